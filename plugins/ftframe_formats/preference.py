"""Preference pairs: a prompt with a chosen and a rejected reply, in OpenAI's DPO JSONL shape and in the
ShareGPT (LLaMA-Factory) DPO shape. Both become canonical examples whose ``messages`` are the prompt and
whose ``chosen``/``rejected`` are one assistant message each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ftframe.api import DataFormat, Example, LoadedData
from ftframe.errors import ConfigError
from ftframe.preflight.format_checks import FormatError, record_errors
from ftframe_formats.file_config import FileConfig, require_names
from ftframe_formats.records import load_records
from ftframe_formats.sharegpt import ShareGPTConfig
from ftframe_formats.sharegpt import convert as sharegpt_convert

OPENAI_INPUT_KEYS = {"messages", "tools", "parallel_tool_calls"}
# The published OpenAI docs name the replies preferred_output / non_preferred_output; the OpenAPI spec
# (openai-openapi @ 498c71d, FineTunePreferenceRequestInput) names them *_completion. Both are read.
PREFERRED = ("preferred_output", "preferred_completion")
NON_PREFERRED = ("non_preferred_output", "non_preferred_completion")


def is_kto(record: Any) -> bool:
    """A KTO record (LLaMA-Factory's ``kto_tag``): one conversation with a true/false ``label``."""
    return isinstance(record, dict) and isinstance(record.get("label"), bool) and (
        "messages" in record or "conversations" in record)


@dataclass
class OpenAIDpoConfig(FileConfig):
    """``path``: a .jsonl file, one ``{"input": {"messages": [...]}, "preferred_output": [...],
    "non_preferred_output": [...]}`` object per line."""


def _one_reply(record: dict[str, Any], keys: tuple[str, ...]) -> tuple[Any, str | None]:
    """The single assistant message under the first of ``keys`` present, or a problem."""
    key = next((k for k in keys if k in record), None)
    if key is None:
        return None, f"missing '{keys[0]}' (a list holding one assistant message)"
    value = record[key]
    if not isinstance(value, list) or len(value) != 1:
        return None, f"'{key}' must be a list holding exactly one assistant message, got {json.dumps(value)[:80]}"
    return value[0], None


def openai_dpo_record(record: Any) -> tuple[dict[str, Any] | None, FormatError | None]:
    """The canonical record for one OpenAI DPO line, or its first problem."""
    if not isinstance(record, dict):
        return None, FormatError("data_type", f"expected a JSON object, got {type(record).__name__}")
    if is_kto(record):
        return None, FormatError("invalid_preference", "this is a KTO example (one reply with a true/false "
                                                       "'label'), not a DPO pair: read it with data=chat_jsonl")
    unknown = set(record) - {"input", *PREFERRED, *NON_PREFERRED}
    if unknown:
        return None, FormatError("unrecognized_key", f"unrecognised key(s) {sorted(unknown)}; a DPO line has "
                                                     f"'input', '{PREFERRED[0]}' and '{NON_PREFERRED[0]}'")
    inp = record.get("input")
    if not isinstance(inp, dict):
        return None, FormatError("missing_messages_list", "missing 'input' object holding the prompt 'messages'")
    extra = set(inp) - OPENAI_INPUT_KEYS
    if extra:
        return None, FormatError("unrecognized_key", f"'input': unrecognised key(s) {sorted(extra)}; allowed: "
                                                     f"{sorted(OPENAI_INPUT_KEYS)}")
    canonical: dict[str, Any] = {"messages": inp.get("messages")}
    if inp.get("tools"):
        canonical["tools"] = inp["tools"]
    for side, keys in (("chosen", PREFERRED), ("rejected", NON_PREFERRED)):
        reply, why = _one_reply(record, keys)
        if why:
            return None, FormatError("invalid_preference", why)
        canonical[side] = reply
    errors = record_errors(canonical)
    return (None, errors[0]) if errors else (canonical, None)


def openai_dpo_example(record: Any, config: Any) -> tuple[Example | None, FormatError | None]:
    canonical, error = openai_dpo_record(record)
    if canonical is None:
        return None, error
    return Example(messages=canonical["messages"], tools=canonical.get("tools"), chosen=canonical["chosen"],
                   rejected=canonical["rejected"]), None


class OpenAIDpo(DataFormat):
    """OpenAI preference (DPO) JSONL: ``input.messages`` + ``preferred_output`` + ``non_preferred_output``."""

    name = "openai_dpo"
    path_kind = "file"
    Config = OpenAIDpoConfig
    description = __doc__ or ""

    def load(self) -> LoadedData:
        return load_records(self.config, openai_dpo_example, jsonl_only=True)


@dataclass
class ShareGPTDpoConfig(ShareGPTConfig):
    chosen_key: str = "chosen"
    """Record key of the preferred reply: one turn (``{"from": "gpt", "value": ...}``)."""
    rejected_key: str = "rejected"
    """Record key of the non-preferred reply (same shape)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_names(self, ("chosen_key", "rejected_key"))
        if self.chosen_key == self.rejected_key:
            raise ConfigError("data.chosen_key and data.rejected_key must differ.")


def sharegpt_dpo_convert(record: Any, cfg: ShareGPTDpoConfig) -> tuple[Example | None, str | None]:
    """The canonical pair for one ShareGPT DPO record, or why it cannot be converted."""
    if not isinstance(record, dict):
        return None, f"expected a JSON object, got {type(record).__name__}"
    if is_kto(record):
        return None, "this is a KTO example (one reply with a true/false 'label'), not a pair: read it with data=sharegpt"
    turns = record.get(cfg.messages_key)
    if not isinstance(turns, list) or not turns:
        return None, f"missing or empty '{cfg.messages_key}' list"
    replies = {}
    for side, key in (("chosen", cfg.chosen_key), ("rejected", cfg.rejected_key)):
        turn = record.get(key)
        if not isinstance(turn, dict):
            return None, (f"missing '{key}': expected one reply turn like {{'{cfg.role_key}': "
                          f"'{cfg.assistant_tag}', '{cfg.content_key}': '...'}}")
        if turn.get(cfg.role_key) not in (cfg.assistant_tag, cfg.function_tag):
            return None, (f"'{key}': the reply's '{cfg.role_key}' must be '{cfg.assistant_tag}' or "
                          f"'{cfg.function_tag}', got {turn.get(cfg.role_key)!r}")
        # The reply is converted as the last turn of the conversation, so tool-call ids and role tags are
        # handled exactly as in a ShareGPT conversation.
        example, why = sharegpt_convert({**record, cfg.messages_key: [*turns, turn]}, cfg)
        if why:
            return None, why.replace(f"{cfg.messages_key}[{len(turns)}]", f"'{key}'")
        assert example is not None
        replies[side] = example
    chosen, rejected = replies["chosen"], replies["rejected"]
    if chosen.messages[-1] == rejected.messages[-1]:
        return None, "'chosen' and 'rejected' are identical (nothing to prefer)"
    return Example(messages=chosen.messages[:-1], tools=chosen.tools, chosen=chosen.messages[-1],
                   rejected=rejected.messages[-1]), None


class ShareGPTDpo(DataFormat):
    """ShareGPT preference pairs (LLaMA-Factory ``ranking: true``): ``conversations`` + ``chosen`` + ``rejected``."""

    name = "sharegpt_dpo"
    path_kind = "file"
    Config = ShareGPTDpoConfig
    description = __doc__ or ""

    def load(self) -> LoadedData:
        return load_records(self.config, sharegpt_dpo_convert)
