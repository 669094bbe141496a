"""OpenAI chat fine-tuning records: one ``{"messages": [...], "tools"?: [...]}`` object per line (JSONL, as
OpenAI uploads them) or a JSON array of them (as LLaMA-Factory's ``messages`` files are); canonical
preference pairs with ``chosen``/``rejected`` and KTO examples with a true/false ``label`` too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftframe.api import DataFormat, Example, LoadedData
from ftframe.preflight.format_checks import FormatError, record_errors
from ftframe_formats.file_config import FileConfig
from ftframe_formats.records import load_records


@dataclass
class ChatJsonlConfig(FileConfig):
    """``path``: a .jsonl file, one chat example per line, or a .json array of them."""


def first_error(record: Any) -> FormatError | None:
    """The first problem of ``record`` by the OpenAI cookbook's checks (see ``ftframe.preflight``), or None."""
    errors = record_errors(record)
    return errors[0] if errors else None


def problem(record: Any) -> str | None:
    """Why ``record`` is not a valid chat example, or None."""
    error = first_error(record)
    return error.detail if error else None


def chat_example(record: Any, config: Any) -> tuple[Example | None, FormatError | None]:
    error = first_error(record)
    if error is not None:
        return None, error
    return Example.from_record(record), None


class ChatJsonl(DataFormat):
    """OpenAI chat-format JSONL (system/user/assistant/tool roles, ``tools``, per-message ``weight``)."""

    name = "chat_jsonl"
    path_kind = "file"
    Config = ChatJsonlConfig
    description = __doc__ or ""

    def load(self) -> LoadedData:
        return load_records(self.config, chat_example)
