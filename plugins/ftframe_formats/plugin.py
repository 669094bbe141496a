"""Entry point of the first-party data formats, and how ``data=auto`` recognises their files."""

from __future__ import annotations

import json
from pathlib import Path

from ftframe import hookimpl
from ftframe.errors import DataError
from ftframe.preflight.format_checks import kto_error
from ftframe_formats.alpaca import Alpaca
from ftframe_formats.chat_jsonl import ChatJsonl
from ftframe_formats.csv_labels import CsvLabels
from ftframe_formats.hf_dataset import HfDataset, is_saved_dataset
from ftframe_formats.preference import NON_PREFERRED, PREFERRED, OpenAIDpo, ShareGPTDpo, is_kto
from ftframe_formats.sharegpt import ShareGPT


@hookimpl
def ftframe_data_formats():
    return [ChatJsonl, CsvLabels, Alpaca, ShareGPT, OpenAIDpo, ShareGPTDpo, HfDataset]


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


def format_of_record(record: dict) -> str | None:
    """The format whose records look like ``record`` (KTO records raise: they are not supported)."""
    if is_kto(record):
        raise DataError(f"{kto_error().detail}.")
    if isinstance(record.get("input"), dict) and any(k in record for k in PREFERRED + NON_PREFERRED):
        return "openai_dpo"
    if "messages" in record:
        return "chat_jsonl"
    if "conversations" in record:
        return "sharegpt_dpo" if "chosen" in record and "rejected" in record else "sharegpt"
    if "instruction" in record:
        return "alpaca"
    return None


@hookimpl
def ftframe_detect_data_format(path):
    path = Path(path)
    if is_saved_dataset(path):
        return "hf_dataset"
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "hf_dataset"
    if suffix in (".csv", ".tsv"):
        return "csv_labels"
    if suffix not in (".json", ".jsonl"):
        return None
    record = first_record(path)
    if not isinstance(record, dict):
        return None
    try:
        return format_of_record(record)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
