"""OpenAI chat fine-tuning JSONL: one ``{"messages": [...], "tools"?: [...]}`` object per line (canonical
preference pairs with ``chosen``/``rejected`` read back too)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftframe.api import DataFormat, Example, LoadedData, Rejected
from ftframe.preflight.format_checks import FormatError, record_errors
from ftframe_formats.file_config import FileConfig, read_text, reject


@dataclass
class ChatJsonlConfig(FileConfig):
    """``path``: a .jsonl file, one chat example per line."""


def first_error(record: Any) -> FormatError | None:
    """The first problem of ``record`` by the OpenAI cookbook's checks (see ``ftframe.preflight``), or None."""
    errors = record_errors(record)
    return errors[0] if errors else None


def problem(record: Any) -> str | None:
    """Why ``record`` is not a valid chat example, or None."""
    error = first_error(record)
    return error.detail if error else None


class ChatJsonl(DataFormat):
    """OpenAI chat-format JSONL (system/user/assistant/tool roles, ``tools``, per-message ``weight``)."""

    name = "chat_jsonl"
    Config = ChatJsonlConfig
    description = __doc__ or ""

    def load(self) -> LoadedData:
        path = Path(self.config.path)
        text = read_text(path, self.config.encoding)
        examples: list[Example] = []
        rejected: list[Rejected] = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
                error = first_error(record)
            except json.JSONDecodeError as exc:
                hint = "; the file is one JSON array, use a JSON-array format or JSONL" if line.strip() == "[" else ""
                record, error = line, FormatError("malformed_json", f"malformed JSON ({exc.msg} at column "
                                                                    f"{exc.colno}){hint}")
            if error is None:
                examples.append(Example(messages=record["messages"], source=where, tools=record.get("tools"),
                                        chosen=record.get("chosen"), rejected=record.get("rejected")))
                continue
            reject(self.config, where, error.detail, record, rejected, error.type)
        return LoadedData(examples, rejected, files=[path])
