"""Flat records of any shape (JSONL, a JSON array, CSV/TSV, parquet or a saved dataset folder) made into chat
examples by naming their fields: the prompt (one field, or a template of several), the response, and an
optional system prompt. No script needed, e.g. ``data=fields data.prompt=question data.response=answer``.

A value is rendered as text by one rule (:func:`render`): a string as is; a number or true/false as JSON
writes it; a list of plain values joined by ``list_separator`` (an empty list becomes ``empty_list``);
anything else (an object, a list of objects) as compact JSON.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from ftframe.api import DataFormat, Example, LoadedData, Message, Rejected
from ftframe.config.errors import did_you_mean
from ftframe.errors import ConfigError
from ftframe.preflight.format_checks import FormatError
from ftframe_formats.csv_labels import read_csv_rows
from ftframe_formats.file_config import FileConfig, reject
from ftframe_formats.hf_dataset import read_rows
from ftframe_formats.records import read_records

PLAIN = (str, int, float, bool)


@dataclass
class FieldsConfig(FileConfig):
    """``path``: a .jsonl/.json, .csv/.tsv or .parquet file (or a ``save_to_disk`` folder) of flat records."""

    prompt: str | None = None
    """The field that is the user's prompt, e.g. ``question``. Set this or ``template``."""
    template: str | None = None
    """The user's prompt built from several fields, each named in braces, e.g.
    ``"Slots: {requested_slots}\\nText: {text}"`` (``{{`` and ``}}`` are literal braces). Set this or ``prompt``."""
    response: str = MISSING
    """The field that is the assistant's reply (what the model learns to answer)."""
    system: str | None = None
    """System prompt put before every prompt (none when unset); it may name fields in braces as ``template`` does."""
    list_separator: str = ", "
    """Joins the items of a list value, e.g. ``["date", "time"]`` -> ``date, time``."""
    empty_list: str = ""
    """What an empty list renders as (default: nothing), e.g. ``none``."""
    delimiter: str | None = None
    """CSV/TSV field separator; default: a tab for .tsv files, a comma otherwise."""
    split: str | None = None
    """Which split of a saved DatasetDict folder to read (default: ``train``, or the only split)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.prompt is None) == (self.template is None):
            raise ConfigError("data.prompt / data.template: set exactly one: data.prompt=FIELD when the prompt is one "
                              "field, or data.template='\"... {field} ...\"' to build it from several fields"
                              + (" (both are set)." if self.prompt is not None else "."))
        for key in ("prompt", "response"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"data.{key}: must name a field, got {value!r}.")
        if self.template is not None and not template_fields(self.template, "data.template"):
            raise ConfigError(f"data.template: names no field in braces ({self.template!r}); e.g. "
                              f"data.template='\"Classify: {{text}}\"'.")
        if self.system is not None:
            template_fields(self.system, "data.system")

    def named(self) -> dict[str, str]:
        """``{field: the option naming it}`` for every field the options use."""
        out = {f: "data.system" for f in template_fields(self.system, "data.system")} if self.system else {}
        if self.template is not None:
            out.update({f: "data.template" for f in template_fields(self.template, "data.template")})
        else:
            out[str(self.prompt)] = "data.prompt"
        out[self.response] = "data.response"
        return out


def template_fields(template: str, key: str) -> list[str]:
    """The field names ``template`` uses, in order; a :class:`ConfigError` naming ``key`` when it is not a
    valid template (unbalanced braces, or anything but a plain field name inside them)."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc} in {template!r}; name fields as {{field}} and write a literal brace as "
                          f"{{{{ or }}}}.") from None
    names: list[str] = []
    for _text, name, spec, conversion in parts:
        if name is None:
            continue
        if not name or any(c in name for c in ".[]") or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ConfigError(f"{key}: {shown} is not a plain field name in braces, e.g. {{text}}; write a literal "
                              f"brace as {{{{ or }}}}.")
        if name not in names:
            names.append(name)
    return names


def render(value: Any, config: FieldsConfig) -> str:
    """A field's value as prompt text (the rule in the module docstring)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, list) and all(isinstance(v, PLAIN) for v in value):
        return config.list_separator.join(render(v, config) for v in value) if value else config.empty_list
    return json.dumps(value, ensure_ascii=False)


def fill(template: str, record: dict[str, Any], config: FieldsConfig) -> str:
    return string.Formatter().vformat(template, (), {k: render(v, config) for k, v in record.items()})


def _records(config: FieldsConfig) -> tuple[list[tuple[str, Any, FormatError | None]], list[Path]]:
    """``(where, record, problem)`` of every record, read by the one reader of the file's type."""
    path = Path(config.path)
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == ".parquet":
        _names, rows, prefix, files = read_rows(path, config.split, "fields")
        return [(f"{prefix}:row {i}", row, None) for i, row in enumerate(rows, start=1)], files
    if suffix in (".csv", ".tsv"):
        header, cells = read_csv_rows(path, config.encoding, config.delimiter)
        out: list[tuple[str, Any, FormatError | None]] = []
        for line, row in cells:
            problem = (FormatError("invalid", f"{len(row)} fields where the header has {len(header)}")
                       if len(row) != len(header) else None)
            out.append((f"{path}:{line}", dict(zip(header, row)) if problem is None else row, problem))
        return out, [path]
    return read_records(path, config.encoding), [path]


def _fields_seen(records: Iterable[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for record in records:
        if isinstance(record, dict):
            seen.update(dict.fromkeys(k for k, v in record.items() if v is not None))
    return list(seen)


def convert(record: Any, config: FieldsConfig, named: dict[str, str]) -> tuple[list[Message] | None, str | None]:
    """The chat messages of one record, or why it cannot be used."""
    if not isinstance(record, dict):
        return None, f"expected a record with fields (a JSON object), got {type(record).__name__}"
    absent = [f for f in named if record.get(f) is None]
    if absent:
        has = ", ".join(k for k, v in record.items() if v is not None) or "no fields"
        what = "missing field" + ("s " if len(absent) > 1 else " ")
        return None, (what + ", ".join(f"{f!r} ({named[f]})" for f in absent) + f"; this record has: {has}")
    prompt = fill(config.template, record, config) if config.template is not None else render(record[config.prompt], config)
    reply = render(record[config.response], config)
    if not prompt.strip():
        return None, f"empty prompt ({'data.template' if config.template is not None else repr(config.prompt)})"
    if not reply.strip():
        return None, f"empty {config.response!r} (data.response)"
    system = fill(config.system, record, config) if config.system else ""
    return ([{"role": "system", "content": system}] if system.strip() else []) + [
        {"role": "user", "content": prompt}, {"role": "assistant", "content": reply}], None


class Fields(DataFormat):
    """Flat records mapped to chat examples by field names: prompt (or a template of fields), response, system."""

    name = "fields"
    path_kind = "any"
    Config = FieldsConfig
    description = __doc__ or ""

    def load(self) -> LoadedData:
        c = self.config
        records, files = _records(c)
        named = c.named()
        seen = _fields_seen(r for _, r, problem in records if problem is None)
        if seen:  # a field no record has is a mistake in the options, not in the rows
            for field, key in named.items():
                if field not in seen:
                    raise ConfigError(f"{key}: no record of {c.path} has the field {field!r}{did_you_mean(field, seen)}; "
                                      f"the records have: {', '.join(seen)}.")
        examples: list[Example] = []
        rejected: list[Rejected] = []
        for where, record, problem in records:
            messages, why = (None, None) if problem is not None else convert(record, c, named)
            if messages is not None:
                examples.append(Example(messages=messages, source=where))
                continue
            error = problem or FormatError("invalid", why or "")
            reject(c, where, error.detail, record, rejected, error.type)
        return LoadedData(examples, rejected, files=files)
