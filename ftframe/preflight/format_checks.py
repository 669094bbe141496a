"""The OpenAI cookbook's chat-format checks on canonical records, one typed error per problem.

The error types are the cookbook's (``data_type``, ``missing_messages_list``, ``message_missing_key``,
``message_unrecognized_key``, ``unrecognized_role``, ``missing_content``,
``example_missing_assistant_message``) plus ftframe's own (``unrecognized_key``,
``empty_assistant_message``, ``invalid_weight``, ``invalid_preference``, ``invalid_label``). The canonical shape is the
core's contract (``ftframe.api``), so the checks live here; data formats call them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant", "tool")
EXAMPLE_KEYS = frozenset({"messages", "tools", "parallel_tool_calls", "functions"})
PREFERENCE_KEYS = frozenset({"chosen", "rejected"})
MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call",
                          "refusal"})

ERROR_TYPES = {
    "data_type": "the example is not a JSON object",
    "missing_messages_list": "no non-empty 'messages' list",
    "message_missing_key": "a message lacks 'role' (or is not an object)",
    "message_unrecognized_key": "a message has a key the chat format does not know",
    "unrecognized_role": "a role other than system/user/assistant/tool",
    "missing_content": "a message without text content (and no tool call)",
    "example_missing_assistant_message": "no assistant message: nothing to learn from",
    "unrecognized_key": "the example has a key the chat format does not know",
    "empty_assistant_message": "an assistant reply that is empty or only whitespace",
    "invalid_weight": "a message weight other than 0 or 1",
    "invalid_preference": "a preference pair whose chosen/rejected reply is missing or malformed",
    "malformed_json": "the line is not valid JSON",
    "invalid_tool_call": "an assistant tool call not shaped {type: function, function: {name, arguments: JSON}}",
    "invalid_tools": "'tools' is not a list of {type: function, function: {name, ...}} definitions",
    "invalid_label": "a KTO 'label' that is not true/false, or that labels no assistant reply",
}
"""Every error type a record can have, with what it means (shown in the preflight report)."""


def json_problem(exc: Any) -> str:
    """Where and why JSON did not parse, e.g. ``Expecting value at column 14`` or ``Unterminated string
    starting at column 3`` (several of the json module's messages already end in "at")."""
    msg = str(exc.msg)
    return f"{msg} column {exc.colno}" if msg.endswith(" at") else f"{msg} at column {exc.colno}"


@dataclass(frozen=True)
class FormatError:
    type: str
    """One of :data:`ERROR_TYPES`."""
    detail: str
    """What exactly is wrong, e.g. ``message 2: unrecognised role 'robot'``."""


def message_errors(messages: Any, *, require_assistant: bool = True) -> list[FormatError]:
    """Problems of a ``messages`` list (a conversation, or the prompt of a preference pair)."""
    if not isinstance(messages, list) or not messages:
        return [FormatError("missing_messages_list", "missing or empty 'messages' list")]
    out: list[FormatError] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            out.append(FormatError("message_missing_key", f"message {i}: expected an object, got {type(m).__name__}"))
            continue
        out += _one_message(m, f"message {i}")
    if require_assistant and not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        out.append(FormatError("example_missing_assistant_message", "no assistant message (nothing to learn from)"))
    return out


def _one_message(m: dict[str, Any], at: str) -> list[FormatError]:
    out: list[FormatError] = []
    if "role" not in m:
        out.append(FormatError("message_missing_key", f"{at}: missing 'role'"))
    extra = set(m) - MESSAGE_KEYS
    if extra:
        out.append(FormatError("message_unrecognized_key", f"{at}: unrecognised key(s) {sorted(extra)}"))
    role = m.get("role")
    if "role" in m and (not isinstance(role, str) or role not in ROLES):
        out.append(FormatError("unrecognized_role", f"{at}: unrecognised role {role!r} (expected one of "
                                                    f"{sorted(ROLES)})"))
    content = m.get("content")
    if content is None and not m.get("tool_calls") and not m.get("function_call"):
        out.append(FormatError("missing_content", f"{at} ({role}): missing content"))
    elif content is not None and not isinstance(content, str):
        out.append(FormatError("missing_content", f"{at} ({role}): content must be a string, got "
                                                  f"{type(content).__name__}"))
    elif role == "assistant" and isinstance(content, str) and not content.strip() and not m.get("tool_calls"):
        out.append(FormatError("empty_assistant_message", f"{at}: empty assistant reply"))
    if "weight" in m and m["weight"] not in (0, 1):
        out.append(FormatError("invalid_weight", f"{at}: weight must be 0 or 1, got {m['weight']!r}"))
    if m.get("tool_calls") is not None:
        problem = tool_calls_problem(m["tool_calls"]) if role == "assistant" else "only assistant messages make tool calls"
        if problem:
            out.append(FormatError("invalid_tool_call", f"{at}: tool_calls: {problem}"))
    return out


def tool_calls_problem(calls: Any) -> str | None:
    """Why an assistant message's ``tool_calls`` are not OpenAI's shape, or None."""
    import json

    if not isinstance(calls, list):
        return f"expected a list, got {type(calls).__name__}"
    for k, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or call.get("type", "function") != "function":
            return f"item {k}: expected {{\"type\": \"function\", \"function\": {{\"name\", \"arguments\"}}}}"
        if not isinstance(fn.get("name"), str) or not fn["name"].strip():
            return f"item {k}: the function has no 'name'"
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                json.loads(args)
            except json.JSONDecodeError as exc:
                return f"item {k} ({fn['name']}): 'arguments' is not valid JSON ({json_problem(exc)})"
        elif not isinstance(args, dict):
            return f"item {k} ({fn['name']}): 'arguments' must be a JSON string or an object, got {type(args).__name__}"
    return None


def tools_problem(tools: Any) -> str | None:
    """Why a record's ``tools`` are not a list of OpenAI function definitions, or None."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        return f"'tools' must be a list, got {type(tools).__name__}"
    for k, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or tool.get("type") != "function" or not isinstance(fn.get("name"), str):
            return f"'tools' item {k}: expected {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}"
    return None


def reply_errors(reply: Any, key: str) -> list[FormatError]:
    """Problems of one side of a preference pair: a single assistant message."""
    if not isinstance(reply, dict):
        return [FormatError("invalid_preference", f"'{key}': expected one assistant message, got "
                                                  f"{type(reply).__name__}")]
    if reply.get("role") != "assistant":
        return [FormatError("invalid_preference", f"'{key}': role must be 'assistant', got {reply.get('role')!r}")]
    return [FormatError(e.type, e.detail.replace("message", f"'{key}'", 1)) for e in _one_message(reply, key)]


def record_errors(record: Any) -> list[FormatError]:
    """Every problem of one canonical record (``messages``, optional ``tools``; ``chosen``/``rejected`` for
    a preference pair, whose ``messages`` are then the prompt and need no assistant turn)."""
    if not isinstance(record, dict):
        return [FormatError("data_type", f"expected a JSON object, got {type(record).__name__}")]
    preference = "chosen" in record or "rejected" in record
    allowed = EXAMPLE_KEYS | (PREFERENCE_KEYS if preference else {"label"})
    out: list[FormatError] = []
    unknown = set(record) - allowed
    if unknown:
        out.append(FormatError("unrecognized_key", f"unrecognised key(s) {sorted(unknown)}; allowed: "
                                                   f"{sorted(allowed)}"))
    if tools_problem(record.get("tools")):
        out.append(FormatError("invalid_tools", str(tools_problem(record.get("tools")))))
    out += message_errors(record.get("messages"), require_assistant=not preference)
    if preference:
        for key in ("chosen", "rejected"):
            out += reply_errors(record.get(key), key)
        if not out and record["chosen"] == record["rejected"]:
            out.append(FormatError("invalid_preference", "'chosen' and 'rejected' are identical (nothing to prefer)"))
    elif "label" in record:
        out += label_errors(record)
    return out


def label_errors(record: dict[str, Any]) -> list[FormatError]:
    """Problems of a KTO example's ``label``: true or false, marking the conversation's last message, which
    must be an assistant reply (the one judged desirable or undesirable)."""
    label, messages = record["label"], record.get("messages")
    if not isinstance(label, bool):
        return [FormatError("invalid_label", f"'label' must be true (a desirable reply) or false (an undesirable "
                                             f"one), got {json.dumps(label)[:40]}")]
    last = messages[-1] if isinstance(messages, list) and messages else None
    if isinstance(last, dict) and last.get("role") != "assistant":
        return [FormatError("invalid_label", f"'label' judges the last message, which must be the assistant reply; "
                                             f"it is a {last.get('role')!r} message")]
    return []
