"""OpenAI chat fine-tuning JSONL: one ``{"messages": [...], "tools"?: [...]}`` object per line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftframe.api import DataFormat, Example, LoadedData, Rejected
from ftframe.errors import DataError
from ftframe_formats.file_config import FileConfig, reject

ROLES = {"system", "user", "assistant", "tool"}
EXAMPLE_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "refusal"}


@dataclass
class ChatJsonlConfig(FileConfig):
    """``path``: a .jsonl file, one chat example per line."""


def problem(record: Any) -> str | None:
    """Why ``record`` is not a valid chat example (the OpenAI cookbook's checks), or None."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    unknown = set(record) - EXAMPLE_KEYS
    if unknown:
        return f"unrecognised key(s) {sorted(unknown)}; allowed: {sorted(EXAMPLE_KEYS)}"
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return "missing or empty 'messages' list"
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            return f"message {i}: expected an object, got {type(m).__name__}"
        if "role" not in m:
            return f"message {i}: missing 'role'"
        extra = set(m) - MESSAGE_KEYS
        if extra:
            return f"message {i}: unrecognised key(s) {sorted(extra)}"
        if not isinstance(m["role"], str) or m["role"] not in ROLES:
            return f"message {i}: unrecognised role {m['role']!r} (expected one of {sorted(ROLES)})"
        content = m.get("content")
        if content is None and not m.get("tool_calls") and not m.get("function_call"):
            return f"message {i} ({m['role']}): missing content"
        if content is not None and not isinstance(content, str):
            return f"message {i} ({m['role']}): content must be a string, got {type(content).__name__}"
        if m["role"] == "assistant" and isinstance(content, str) and not content.strip() and not m.get("tool_calls"):
            return f"message {i}: empty assistant reply"
        if "weight" in m and m["weight"] not in (0, 1):
            return f"message {i}: weight must be 0 or 1, got {m['weight']!r}"
    if not any(m["role"] == "assistant" for m in messages):
        return "no assistant message (nothing to learn from)"
    return None


class ChatJsonl(DataFormat):
    """OpenAI chat-format JSONL (system/user/assistant/tool roles, ``tools``, per-message ``weight``)."""

    name = "chat_jsonl"
    Config = ChatJsonlConfig
    description = __doc__ or ""

    def load(self) -> LoadedData:
        path = Path(self.config.path)
        if not path.is_file():
            raise DataError(f"{path}: file not found. Check data.path (relative paths start at {Path.cwd()}).")
        examples: list[Example] = []
        rejected: list[Rejected] = []
        try:
            lines = path.read_text(encoding=self.config.encoding).splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not valid {self.config.encoding} text (byte {exc.start}); re-save the file "
                            f"as UTF-8 or set data.encoding.") from None
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
                why = problem(record)
            except json.JSONDecodeError as exc:
                record, why = line, f"malformed JSON ({exc.msg} at column {exc.colno})"
            if why is None:
                examples.append(Example(messages=record["messages"], source=where, tools=record.get("tools")))
                continue
            reject(self.config, where, why, record, rejected)
        return LoadedData(examples, rejected, files=[path])
