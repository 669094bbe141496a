"""Entry point of the first-party data formats, and how ``data=auto`` recognises their files."""

from __future__ import annotations

import json
from pathlib import Path

from ftframe import hookimpl
from ftframe.errors import DataError
from ftframe_formats.alpaca import Alpaca
from ftframe_formats.chat_jsonl import ChatJsonl
from ftframe_formats.csv_labels import CsvLabels
from ftframe_formats.fields import Fields
from ftframe_formats.hf_dataset import HfDataset, is_saved_dataset
from ftframe_formats.preference import NON_PREFERRED, PREFERRED, OpenAIDpo, ShareGPTDpo
from ftframe_formats.sharegpt import ShareGPT


@hookimpl
def ftframe_data_formats():
    return [ChatJsonl, CsvLabels, Alpaca, ShareGPT, OpenAIDpo, ShareGPTDpo, HfDataset, Fields]


DETECT_BYTES = 1 << 20
"""How much of a file detection reads (one record is enough; a large JSON array is parsed whole only when its
first record is longer than this)."""


def first_record(path: Path) -> object:
    """The first record of a JSON array or JSONL file (None when unreadable). Undecodable bytes are replaced:
    detection needs the keys, and the chosen format reports the encoding (with the line) when it reads."""
    try:
        with open(path, "rb") as f:
            head = f.read(DETECT_BYTES)
            whole = len(head) < DETECT_BYTES
        text = head.decode("utf-8", errors="replace").removeprefix("\ufeff").lstrip()
        if text.startswith("["):
            body = text[1:].lstrip()
            if body.startswith("]"):
                return None
            try:
                return json.JSONDecoder().raw_decode(body)[0]
            except ValueError:
                if whole:
                    return None
                records = json.loads(path.read_text(encoding="utf-8", errors="replace").removeprefix("\ufeff"))
                return records[0] if isinstance(records, list) and records else None
        line = next((ln for ln in text.splitlines() if ln.strip()), "")
        return json.loads(line) if line else None
    except (OSError, ValueError):
        return None


def fields_hint(path: Path, record: dict) -> str:
    """For records no format knows: their fields, and a ``data=fields`` command line that maps them."""
    keys = [str(k) for k in record]
    prompt = next((k for k in keys if isinstance(record[k], str) and record[k].strip()), keys[0])
    response = next((k for k in reversed(keys) if k != prompt), None)
    example = (f"e.g. data=fields data.prompt={prompt} data.response={response}" if response else
               "data=fields data.prompt=FIELD data.response=FIELD")
    return (f"{path}: these records have the fields {', '.join(keys)}, which no installed data format reads by "
            f"itself. Name the prompt and response fields: {example} (or data.template='\"... {{field}} ...\"' "
            f"for a prompt built from several fields).")


def format_of_record(record: dict) -> str | None:
    """The format whose records look like ``record``."""
    if isinstance(record.get("input"), dict) and any(k in record for k in PREFERRED + NON_PREFERRED):
        return "openai_dpo"
    if "messages" in record:
        return "chat_jsonl"
    if "conversations" in record:
        return "sharegpt_dpo" if "chosen" in record and "rejected" in record else "sharegpt"
    if "instruction" in record:
        return "alpaca"
    return None


@hookimpl(trylast=True)  # other plugins' detectors answer first; this one says what to do when none knows a file
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
    name = format_of_record(record)
    if name is None and record:
        raise DataError(fields_hint(path, record))
    return name
