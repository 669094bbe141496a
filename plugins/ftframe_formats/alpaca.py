"""Alpaca instruction data (LLaMA-Factory's default shape): a JSON list or JSONL of
``{"instruction", "input"?, "output", "system"?, "history"?}`` records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftframe.api import DataFormat, Example, LoadedData, Message
from ftframe_formats.file_config import FileConfig, require_names
from ftframe_formats.records import load_records


@dataclass
class AlpacaConfig(FileConfig):
    instruction: str = "instruction"
    """Record key of the instruction (the user's request; required)."""
    input: str = "input"
    """Record key of the optional input, appended to the instruction after a blank line."""
    output: str = "output"
    """Record key of the answer (the assistant reply; required)."""
    system: str = "system"
    """Record key of the optional per-record system prompt."""
    history: str = "history"
    """Record key of the optional earlier turns: a list of ``[user, assistant]`` pairs."""
    default_system: str | None = None
    """System prompt for records without one (none when unset)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_names(self, ("instruction", "input", "output", "system", "history"))


def _optional_str(record: dict[str, Any], key: str) -> tuple[str, str | None]:
    """The string at ``key`` ("" when absent or null), or a problem."""
    value = record.get(key)
    if value is None:
        return "", None
    if not isinstance(value, str):
        return "", f"'{key}' must be a string, got {type(value).__name__}"
    return value, None


def convert(record: Any, cfg: AlpacaConfig) -> tuple[list[Message] | None, str | None]:
    """Chat messages for one Alpaca record, or why it cannot be converted."""
    if not isinstance(record, dict):
        return None, f"expected a JSON object, got {type(record).__name__}"
    for key in (cfg.instruction, cfg.output):
        value = record.get(key)
        if value is None:
            return None, f"missing '{key}'"
        if not isinstance(value, str):
            return None, f"'{key}' must be a string, got {type(value).__name__}"
        if not value.strip():
            return None, f"empty '{key}'"
    user_input, why = _optional_str(record, cfg.input)
    if why:
        return None, why
    system, why = _optional_str(record, cfg.system)
    if why:
        return None, why
    history = record.get(cfg.history)
    if history is None:
        history = []
    if not isinstance(history, list):
        return None, f"'{cfg.history}' must be a list of [user, assistant] pairs, got {type(history).__name__}"
    messages: list[Message] = []
    system = system or (cfg.default_system or "")
    if system:
        messages.append({"role": "system", "content": system})
    for i, pair in enumerate(history):
        if (not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(t, str) for t in pair)):
            return None, f"'{cfg.history}' item {i}: expected a [user, assistant] pair of strings, got {pair!r:.80}"
        if not pair[1].strip():
            return None, f"'{cfg.history}' item {i}: empty assistant reply"
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    prompt = record[cfg.instruction] + (f"\n\n{user_input}" if user_input.strip() else "")
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": record[cfg.output]}]
    return messages, None


class Alpaca(DataFormat):
    """Alpaca instruction data (instruction/input/output, optional system and history), JSON or JSONL."""

    name = "alpaca"
    path_kind = "file"
    Config = AlpacaConfig
    description = __doc__ or ""

    def load(self) -> LoadedData:
        def to_example(record: Any, cfg: AlpacaConfig) -> tuple[Example | None, str | None]:
            messages, why = convert(record, cfg)
            return (Example(messages=messages) if messages is not None else None), why

        return load_records(self.config, to_example)
