"""The one record-loading loop every JSON/JSONL data format uses: read, parse, convert, keep or reject.

A format supplies ``to_example(record, config) -> (Example | None, problem)``; the problem is a plain
reason or a typed :class:`FormatError` (its type is what the preflight report counts per error kind).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftframe.api import Example, LoadedData, Rejected
from ftframe.errors import DataError
from ftframe.preflight.format_checks import FormatError, json_problem
from ftframe_formats.file_config import read_text, reject

Problem = str | FormatError | None
ToExample = Callable[[Any, Any], tuple[Example | None, Problem]]


def read_records(path: Path, encoding: str, *, jsonl_only: bool = False) -> list[tuple[str, Any, FormatError | None]]:
    """``(where, record, problem)`` for each record of a JSON-array or JSONL file.

    The format is decided by content: a file whose first non-space character is ``[`` is one JSON array
    (records are located as ``PATH:record N``), anything else is JSONL (``PATH:LINE``). ``jsonl_only``
    formats (OpenAI's chat and DPO files are JSONL by definition) read every file line by line. A JSONL line
    that is not valid JSON comes back with its problem; an unreadable JSON array raises :class:`DataError`.
    """
    text = read_text(path, encoding)
    if not jsonl_only and text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: malformed JSON ({json_problem(exc)}). The file starts "
                            f"with '[' so it is read as one JSON array of records; fix the JSON, or write one "
                            f"record per line (JSONL).") from None
        return [(f"{path}:record {n}", rec, None) for n, rec in enumerate(records, start=1)]
    expected = "one JSON object per line" if jsonl_only else "a JSON array of records or one JSON object per line (JSONL)"
    out: list[tuple[str, Any, FormatError | None]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((f"{path}:{lineno}", json.loads(line), None))
        except json.JSONDecodeError as exc:
            hint = "; the file is one JSON array, use a JSON-array format or JSONL" if line.strip() == "[" else ""
            why = f"malformed JSON ({json_problem(exc)}); expected {expected}{hint}"
            out.append((f"{path}:{lineno}", line, FormatError("malformed_json", why)))
    return out


def load_records(config: Any, to_example: ToExample, *, jsonl_only: bool = False) -> LoadedData:
    """Every record of ``config.path`` through ``to_example``; bad records raise or are rejected (with
    ``config.on_error=skip``) with their location, reason and error type."""
    path = Path(config.path)
    examples: list[Example] = []
    rejected: list[Rejected] = []
    for where, record, problem in read_records(path, config.encoding, jsonl_only=jsonl_only):
        example = None
        if problem is None:
            example, problem = to_example(record, config)
        if example is not None:
            example.source = where
            examples.append(example)
            continue
        error = problem if isinstance(problem, FormatError) else FormatError("invalid", problem or "")
        reject(config, where, error.detail, record, rejected, error.type)
    return LoadedData(examples, rejected, files=[path])
