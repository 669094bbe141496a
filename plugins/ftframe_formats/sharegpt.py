"""ShareGPT conversations (LLaMA-Factory's shape): a JSON list or JSONL of
``{"conversations": [{"from": ..., "value": ...}], "system"?, "tools"?}`` records, with function calls."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ftframe.api import DataFormat, Example, LoadedData, Message
from ftframe.errors import ConfigError
from ftframe.preflight.format_checks import json_problem
from ftframe_formats.file_config import FileConfig, require_names
from ftframe_formats.records import load_records

_KEYS = ("messages_key", "role_key", "content_key", "system_key", "tools_key", "label_key")
_TAGS = ("user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag")


@dataclass
class ShareGPTConfig(FileConfig):
    messages_key: str = "conversations"
    """Record key of the list of turns."""
    role_key: str = "from"
    """Turn key of the role tag."""
    content_key: str = "value"
    """Turn key of the text."""
    system_key: str = "system"
    """Record key of the optional system prompt (becomes a leading system message)."""
    tools_key: str = "tools"
    """Record key of the optional tool definitions: a list, or a JSON string of one (bare function dicts are
    wrapped as ``{"type": "function", "function": ...}``)."""
    user_tag: str = "human"
    """Role tag of user turns."""
    assistant_tag: str = "gpt"
    """Role tag of assistant turns."""
    observation_tag: str = "observation"
    """Role tag of tool results (become ``tool`` messages answering the preceding function call)."""
    function_tag: str = "function_call"
    """Role tag of function calls: ``{"name": ..., "arguments": ...}`` JSON (or a list of them) becomes the
    assistant's ``tool_calls``."""
    system_tag: str = "system"
    """Role tag of system turns inside the conversation."""
    label_key: str = "label"
    """Record key of a KTO label: true (the last reply is desirable) or false (undesirable); LLaMA-Factory's
    ``kto_tag`` column. Records without it are plain conversations."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_names(self, _KEYS + _TAGS)
        tags = [getattr(self, key) for key in _TAGS]
        if len(set(tags)) != len(tags):
            raise ConfigError(f"data.*_tag: role tags must differ, got {dict(zip(_TAGS, tags))}.")


def parse_tools(raw: Any, key: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Tool definitions in the OpenAI shape (None when there are none), or a problem."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            return None, f"malformed '{key}' JSON ({json_problem(exc)})"
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        return None, f"'{key}' must be a list of function definitions, got {type(raw).__name__}"
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(raw):
        if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("function"), dict):
            tools.append(tool)
        elif isinstance(tool, dict) and isinstance(tool.get("name"), str) and tool["name"]:
            tools.append({"type": "function", "function": tool})
        else:
            return None, f"'{key}' item {i}: expected a function definition with a 'name', got {tool!r:.80}"
    return tools or None, None


def _tool_calls(value: str, first: int) -> list[dict[str, Any]] | None:
    """OpenAI ``tool_calls`` for a function-call turn's JSON (one call or a list), or None if it is not one."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return None
    calls = parsed if isinstance(parsed, list) and parsed else [parsed]
    out = []
    for k, call in enumerate(calls, start=first):
        if not (isinstance(call, dict) and isinstance(call.get("name"), str) and call["name"] and "arguments" in call):
            return None
        args = call["arguments"]
        out.append({"id": f"call_{k}", "type": "function",
                    "function": {"name": call["name"],
                                 "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)}})
    return out


def convert(record: Any, cfg: ShareGPTConfig, *, require_reply: bool = True) -> tuple[Example | None, str | None]:
    """The canonical example (without ``source``) for one ShareGPT record, or why it cannot be converted.

    ``require_reply=False`` accepts a conversation without an assistant turn (a preference pair's prompt).
    """
    if not isinstance(record, dict):
        return None, f"expected a JSON object, got {type(record).__name__}"
    turns = record.get(cfg.messages_key)
    if not isinstance(turns, list) or not turns:
        return None, f"missing or empty '{cfg.messages_key}' list"
    system = record.get(cfg.system_key)
    if system is not None and not isinstance(system, str):
        return None, f"'{cfg.system_key}' must be a string, got {type(system).__name__}"
    tools, why = parse_tools(record.get(cfg.tools_key), cfg.tools_key)
    if why:
        return None, why
    roles = {cfg.user_tag: "user", cfg.assistant_tag: "assistant", cfg.system_tag: "system",
             cfg.function_tag: "assistant", cfg.observation_tag: "tool"}
    messages: list[Message] = [{"role": "system", "content": system}] if system and system.strip() else []
    n_calls = 0
    pending: list[str] = []  # ids of the latest function call's tool_calls not yet answered
    previous = None
    for i, turn in enumerate(turns):
        at = f"{cfg.messages_key}[{i}]"
        if not isinstance(turn, dict):
            return None, f"{at}: expected an object, got {type(turn).__name__}"
        tag, value = turn.get(cfg.role_key), turn.get(cfg.content_key)
        if tag not in roles:
            return None, (f"{at}: unknown role tag {tag!r} in '{cfg.role_key}' (expected one of {sorted(roles)}; "
                          f"set data.user_tag, data.assistant_tag, ... if your file uses other names)")
        if not isinstance(value, str):
            return None, f"{at}: '{cfg.content_key}' must be a string, got {type(value).__name__}"
        message: Message = {"role": roles[tag], "content": value}
        if tag == cfg.function_tag:
            if not value.strip():
                return None, f"{at}: empty function call"
            calls = _tool_calls(value, n_calls)
            pending = []
            if calls:
                n_calls += len(calls)
                pending = [c["id"] for c in calls]
                message = {"role": "assistant", "content": None, "tool_calls": calls}
        elif tag == cfg.observation_tag:
            if previous not in (cfg.function_tag, cfg.observation_tag):
                return None, (f"{at}: an '{tag}' (tool result) that does not follow a '{cfg.function_tag}' turn; "
                              f"it answers no function call")
            if pending:
                message["tool_call_id"] = pending.pop(0)
        elif tag == cfg.assistant_tag and not value.strip():
            return None, f"{at}: empty assistant reply"
        messages.append(message)
        previous = tag
    if require_reply and not any(m["role"] == "assistant" for m in messages):
        return None, f"no '{cfg.assistant_tag}' or '{cfg.function_tag}' turn (nothing to learn from)"
    label = record.get(cfg.label_key)
    if label is not None and not isinstance(label, bool):
        return None, (f"'{cfg.label_key}' must be true (a desirable reply) or false (an undesirable one), got "
                      f"{json.dumps(label)[:40]}")
    if label is not None and messages[-1]["role"] != "assistant":
        return None, f"'{cfg.label_key}' judges the last turn, which must be a '{cfg.assistant_tag}' reply"
    return Example(messages=messages, tools=tools, desirable=label), None


class ShareGPT(DataFormat):
    """ShareGPT conversations (human/gpt/system turns, function calls and observations, tools), JSON or JSONL."""

    name = "sharegpt"
    path_kind = "file"
    Config = ShareGPTConfig
    description = __doc__ or ""

    def load(self) -> LoadedData:
        return load_records(self.config, convert)
