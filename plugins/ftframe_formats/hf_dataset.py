"""A saved Hugging Face dataset folder (``datasets.Dataset.save_to_disk``) or a parquet file, mapped to
canonical examples. The column layout is recognised (chat ``messages``, ShareGPT ``conversations``, Alpaca
``instruction``/``output``, ``text``/``label``, preference ``prompt``/``chosen``/``rejected``) or named, and
columns can be renamed to the names a layout expects."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from ftframe.api import DataFormat, Example, LoadedData, Message, Rejected
from ftframe.config import one_of
from ftframe.config.errors import did_you_mean
from ftframe.errors import DataError
from ftframe.preflight.format_checks import record_errors
from ftframe.preflight.input_paths import input_problem
from ftframe_formats.alpaca import AlpacaConfig
from ftframe_formats.alpaca import convert as alpaca_convert
from ftframe_formats.file_config import reject
from ftframe_formats.preference import ShareGPTDpoConfig, openai_dpo_record, sharegpt_dpo_convert
from ftframe_formats.sharegpt import ShareGPTConfig
from ftframe_formats.sharegpt import convert as sharegpt_convert

LAYOUTS = ("auto", "messages", "sharegpt", "sharegpt_dpo", "alpaca", "text_label", "prompt_chosen_rejected",
           "openai_dpo")
SAVED_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


@dataclass
class HfDatasetConfig:
    path: str = MISSING
    """A folder written by ``datasets`` ``save_to_disk`` (a Dataset or DatasetDict), or a ``.parquet`` file."""
    split: str | None = None
    """Which split of a saved DatasetDict to read (default: ``train``, or the only split)."""
    layout: str = "auto"
    """Column layout: ``auto`` (recognised from the column names), ``messages`` (OpenAI chat), ``sharegpt``,
    ``sharegpt_dpo``, ``alpaca``, ``text_label``, ``prompt_chosen_rejected`` (TRL preference columns:
    strings or message lists) or ``openai_dpo``."""
    columns: dict[str, str] = field(default_factory=dict)
    """Rename dataset columns to the names the layout expects, as ``{expected: actual}``, e.g.
    ``{messages: dialog}`` or ``{text: utterance, label: intent}``."""
    on_error: str = "raise"
    """``raise``: stop at the first bad row; ``skip``: keep going, writing each rejected row with its
    reason to ``rejected.jsonl`` in the run dir."""

    def __post_init__(self) -> None:
        one_of("data.on_error", self.on_error, ("raise", "skip"))
        one_of("data.layout", self.layout, LAYOUTS)


def is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / m).is_file() for m in SAVED_DATASET_MARKERS)


def read_rows(path: Path, split: str | None, fmt: str = "hf_dataset"
              ) -> tuple[list[str], Iterator[dict[str, Any]], str, list[Path]]:
    """``(column names, rows, location prefix, files read)`` of a parquet file or saved dataset folder (``fmt``:
    the format reading it, named in hints so that they work under ``data=auto`` too)."""
    problem = input_problem(path, "data.path", "any", records=True)
    if problem:
        raise DataError(problem)
    if path.is_file():
        if path.suffix.lower() != ".parquet":
            raise DataError(f"{path}: {fmt} reads .parquet files or dataset folders here; use another data=<format> "
                            f"for this file.")
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError, ArrowIOError an OSError
            raise DataError(f"{path}: not a readable parquet file ({exc}).") from None
        return table.column_names, iter(table.to_pylist()), str(path), [path]
    if not is_saved_dataset(path):
        raise DataError(f"{path}: not a saved Hugging Face dataset folder (none of {', '.join(SAVED_DATASET_MARKERS)} "
                        f"in it); write it with Dataset.save_to_disk, or point data.path at a file.")
    from datasets import DatasetDict, load_from_disk

    ds = load_from_disk(str(path))
    where = str(path)
    if isinstance(ds, DatasetDict):
        names = list(ds)
        chosen = split or ("train" if "train" in ds else (names[0] if len(names) == 1 else None))
        if chosen not in ds:
            raise DataError(f"{path}: choose a split with data={fmt} data.split=NAME (this DatasetDict has: "
                            f"{', '.join(names)})"
                            + (f"; no split {split!r}{did_you_mean(split, names)}" if split else "") + ".")
        ds, where = ds[chosen], f"{path}[{chosen}]"
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return list(ds.column_names), iter(ds), where, files


def detect_layout(columns: set[str]) -> str | None:
    """The layout named by a set of column names (the first match wins), or None."""
    if "input" in columns and ({"preferred_output", "preferred_completion"} & columns):
        return "openai_dpo"
    if {"chosen", "rejected"} <= columns:
        return "sharegpt_dpo" if "conversations" in columns else "prompt_chosen_rejected"
    if "messages" in columns:
        return "messages"
    if "conversations" in columns:
        return "sharegpt"
    if {"instruction", "output"} <= columns:
        return "alpaca"
    if {"text", "label"} <= columns:
        return "text_label"
    return None


def _drop_nulls(value: Any) -> Any:
    """Arrow gives every struct the union of all fields, absent ones as None: drop those keys again."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _as_messages(value: Any, role: str) -> list[Message] | None:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        return value
    return None


def _pcr(row: dict[str, Any]) -> tuple[Example | None, str | None]:
    """TRL-style ``prompt``/``chosen``/``rejected`` (each a string or a list of messages; without a prompt
    column the shared leading turns of ``chosen`` are the prompt)."""
    chosen, rejected = _as_messages(row.get("chosen"), "assistant"), _as_messages(row.get("rejected"), "assistant")
    if not chosen or not rejected:
        return None, "'chosen' and 'rejected' must each be a string or a non-empty list of messages"
    prompt = _as_messages(row.get("prompt"), "user") if row.get("prompt") is not None else chosen[:-1]
    if prompt is None:
        return None, "'prompt' must be a string or a list of messages"
    record = {"messages": prompt, "chosen": chosen[-1], "rejected": rejected[-1]}
    errors = record_errors(record)
    if errors:
        return None, errors[0].detail
    return Example(messages=prompt, chosen=chosen[-1], rejected=rejected[-1]), None


class HfDataset(DataFormat):
    """A saved Hugging Face dataset folder or a parquet file (column layout recognised or configured)."""

    name = "hf_dataset"
    path_kind = "any"
    Config = HfDatasetConfig
    description = __doc__ or ""

    def load(self) -> LoadedData:
        c = self.config
        path = Path(c.path)
        names, rows, prefix, files = read_rows(path, c.split)
        columns = dict(c.columns or {})
        missing = {k: v for k, v in columns.items() if v not in names}
        if missing:
            k, v = next(iter(missing.items()))
            raise DataError(f"{prefix}: data.columns.{k}: no column {v!r}{did_you_mean(v, names)}; the dataset has: "
                            f"{', '.join(names)}.")
        renamed = {v: k for k, v in columns.items()}
        visible = {renamed.get(n, n) for n in names}
        layout = c.layout if c.layout != "auto" else detect_layout(visible)
        if layout is None:
            raise DataError(f"{prefix}: cannot tell the column layout from the columns {sorted(names)}; set "
                            f"data=hf_dataset data.layout=LAYOUT (one of {', '.join(LAYOUTS[1:])}) and map columns "
                            f"with data.columns, e.g. data.columns.messages=dialog; or name a prompt and a response "
                            f"column with data=fields data.prompt=COLUMN data.response=COLUMN.")
        convert = self._converter(layout, str(path))
        examples: list[Example] = []
        rejected: list[Rejected] = []
        for i, raw in enumerate(rows, start=1):
            where = f"{prefix}:row {i}"
            row = _drop_nulls({renamed.get(k, k): v for k, v in raw.items()})
            example, why = convert(row)
            if example is not None:
                example.source = where
                examples.append(example)
            else:
                reject(c, where, why or "", raw, rejected)
        return LoadedData(examples, rejected, files=files)

    def _converter(self, layout: str, path: str) -> Any:
        if layout == "messages":
            def chat(row: dict[str, Any]) -> tuple[Example | None, str | None]:
                record = {k: row[k] for k in ("messages", "tools", "label") if k in row}
                errors = record_errors(record)
                if errors:
                    return None, errors[0].detail
                return Example.from_record(record), None
            return chat
        if layout == "sharegpt":
            return lambda row: sharegpt_convert(row, ShareGPTConfig(path=path))
        if layout == "sharegpt_dpo":
            return lambda row: sharegpt_dpo_convert(row, ShareGPTDpoConfig(path=path))
        if layout == "alpaca":
            def alpaca(row: dict[str, Any]) -> tuple[Example | None, str | None]:
                messages, why = alpaca_convert(row, AlpacaConfig(path=path))
                return (Example(messages=messages) if messages else None), why
            return alpaca
        if layout == "text_label":
            def text_label(row: dict[str, Any]) -> tuple[Example | None, str | None]:
                text, label = row.get("text"), row.get("label")
                if not isinstance(text, str) or not text.strip():
                    return None, "empty or missing 'text'"
                if label is None or not str(label).strip():
                    return None, "empty or missing 'label'"
                return Example(messages=[{"role": "user", "content": text.strip()},
                                         {"role": "assistant", "content": str(label).strip()}]), None
            return text_label
        if layout == "openai_dpo":
            def dpo(row: dict[str, Any]) -> tuple[Example | None, str | None]:
                rec, error = openai_dpo_record(row)
                if rec is None:
                    return None, error.detail if error else "invalid"
                return Example(messages=rec["messages"], tools=rec.get("tools"), chosen=rec["chosen"],
                               rejected=rec["rejected"]), None
            return dpo
        return _pcr
