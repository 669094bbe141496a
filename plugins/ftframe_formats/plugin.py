"""Entry point of the first-party data formats, and how ``data=auto`` recognises their files."""

from __future__ import annotations

import json
from pathlib import Path

from ftframe import hookimpl
from ftframe_formats.alpaca import Alpaca
from ftframe_formats.chat_jsonl import ChatJsonl
from ftframe_formats.csv_labels import CsvLabels
from ftframe_formats.sharegpt import ShareGPT


@hookimpl
def ftframe_data_formats():
    return [ChatJsonl, CsvLabels, Alpaca, ShareGPT]


def first_record(path: Path) -> object:
    """The first record of a JSON array or JSONL file (None when unreadable)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
        if text.lstrip().startswith("["):
            records = json.loads(text)
            return records[0] if records else None
        line = next((ln for ln in text.splitlines() if ln.strip()), "")
        return json.loads(line) if line else None
    except (OSError, ValueError):
        return None


@hookimpl
def ftframe_detect_data_format(path):
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv_labels"
    if suffix not in (".json", ".jsonl"):
        return None
    record = first_record(path)
    if not isinstance(record, dict):
        return None
    if "messages" in record:
        return "chat_jsonl"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record:
        return "alpaca"
    return None
