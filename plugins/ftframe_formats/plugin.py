"""Entry point of the first-party data formats."""

from ftframe import hookimpl
from ftframe_formats.chat_jsonl import ChatJsonl


@hookimpl
def ftframe_data_formats():
    return [ChatJsonl]


@hookimpl
def ftframe_detect_data_format(path):
    return "chat_jsonl" if str(path).endswith(".jsonl") else None
