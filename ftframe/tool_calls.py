"""Tool calls as text and as OpenAI's ``tool_calls``: the one parser that evaluation and ``ftframe serve`` share.

A model emits a tool call as text in its chat template's syntax. Recognised forms:

* Qwen2.5 / Hermes: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (any number, with
  text around them; a last block the model did not close is read too);
* a bare JSON object ``{"name": ..., "arguments"|"parameters": ...}`` (Llama 3.1's JSON tool calls), or a
  JSON list of them, as the whole reply.

``arguments`` may be a JSON object or a JSON string of one (OpenAI's wire form); both compare equal after
:func:`canonical_arguments` (parsed, keys sorted, no whitespace). A gold reply with ``tool_calls`` is written
as text by :func:`reply_text` in the ``<tool_call>`` form, which is what a Qwen2.5-style template renders, so
gold and prediction go through the same parser.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(re.escape(OPEN) + r"(.*?)(?:" + re.escape(CLOSE) + r"|\Z)", re.DOTALL)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Any
    """The parsed JSON value (normally an object); a string that is not JSON stays that string."""
    id: str | None = None

    def key(self) -> tuple[str, str]:
        """``(name, canonical arguments)``: two calls are the same call when their keys are equal."""
        return self.name, canonical_arguments(self.arguments)

    def arguments_json(self) -> str:
        """The arguments as OpenAI sends them: a JSON string."""
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments, ensure_ascii=False)


@dataclass
class ParsedReply:
    """A reply split into its text and its tool calls."""

    content: str | None
    """The text outside the calls (stripped), None when there is none."""
    calls: list[ToolCall] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    """``<tool_call>`` blocks that are not a call (invalid JSON, no name): they count as no call."""


def _arguments(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return {} if value is None else value


def canonical_arguments(value: Any) -> str:
    """Arguments compared as JSON: parsed when a string, keys sorted, no whitespace (``1`` and ``1.0`` differ)."""
    value = _arguments(value)
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _call(value: Any, *, need_arguments: bool = False) -> ToolCall | None:
    """A call from ``{"name", "arguments"|"parameters"}`` (or OpenAI's ``{"function": {...}}``), else None.
    ``need_arguments``: a bare JSON reply is a call only with an arguments key (``{"name": "Ada"}`` is an answer)."""
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        return _call({**value["function"], "id": value.get("id")})
    if not (isinstance(value, dict) and isinstance(value.get("name"), str) and value["name"].strip()):
        return None
    if set(value) - {"name", "arguments", "parameters", "id", "type"}:
        return None
    if need_arguments and "arguments" not in value and "parameters" not in value:
        return None
    args = value.get("arguments", value.get("parameters"))
    return ToolCall(value["name"].strip(), _arguments(args), value.get("id") if isinstance(value.get("id"), str) else None)


def parse_tool_calls(text: str | None) -> ParsedReply:
    """The tool calls in a model's reply (see the module docstring for the forms), and the text around them."""
    text = text or ""
    blocks = list(_BLOCK.finditer(text))
    if blocks:
        calls, malformed = [], []
        for m in blocks:
            body = m.group(1).strip()
            try:
                call = _call(json.loads(body))
            except json.JSONDecodeError:
                call = None
            if call is None:
                malformed.append(body)
            else:
                calls.append(call)
        rest = _BLOCK.sub("", text).strip()
        return ParsedReply(rest or None, calls, malformed)
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            value = None
        items = value if isinstance(value, list) and value else [value]
        found = [_call(v, need_arguments=True) for v in items]
        if all(c is not None for c in found):
            return ParsedReply(None, found)  # type: ignore[arg-type]
    return ParsedReply(stripped or None)


def message_tool_calls(message: dict[str, Any]) -> list[ToolCall]:
    """The calls of an OpenAI assistant message (``tool_calls`` with ``function.name/arguments``); a call
    without a name is skipped (the format checks reject such messages)."""
    calls = message.get("tool_calls") or []
    return [c for c in (_call(raw) for raw in calls if isinstance(raw, dict)) if c is not None]


def reply_text(message: dict[str, Any]) -> str:
    """An assistant message as the text a Qwen2.5/Hermes-style template renders for it: its content, then one
    ``<tool_call>`` block per call (``{"name": ..., "arguments": <object>}``)."""
    parts = [message["content"]] if isinstance(message.get("content"), str) and message["content"].strip() else []
    for call in message_tool_calls(message):
        body = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
        parts.append(f"{OPEN}\n{body}\n{CLOSE}")
    return "\n".join(parts)


def openai_tool_calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """``message.tool_calls`` of a chat completion: ``[{id, type: "function", function: {name, arguments}}]``
    (``arguments`` a JSON string; an id is made up where the model gave none)."""
    return [{"id": c.id or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": c.name, "arguments": c.arguments_json()}} for c in calls]


def template_arguments(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` with each tool call's JSON-string ``arguments`` parsed into an object, the shape Hugging Face
    chat templates expect (they write ``arguments | tojson``; a string would be rendered quoted, escaped)."""
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return message
    out = []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            parsed = _arguments(fn["arguments"])
            if not isinstance(parsed, str):
                call = {**call, "function": {**fn, "arguments": parsed}}
        out.append(call)
    return {**message, "tool_calls": out}


class CallStream:
    """A streamed reply split into text that can be sent at once and tool calls read at its end (``ftframe
    serve`` with ``tools``): text from the first ``<tool_call>`` on, or a whole reply that starts as JSON (a bare
    call), is held back; so is a tail that may be the start of ``<tool_call>``, and trailing whitespace."""

    def __init__(self) -> None:
        self.text, self.sent = "", 0
        self.hold_from: int | None = None

    def feed(self, piece: str) -> str:
        """Add ``piece``; the text that is surely content and not sent yet."""
        self.text += piece
        safe = self._safe()
        out = self.text[self.sent:safe] if safe > self.sent else ""
        self.sent = max(self.sent, safe)
        return out

    def _safe(self) -> int:
        text = self.text
        if self.sent == 0 and (not text.strip() or text.lstrip()[:1] in ("{", "[")):
            return 0
        if self.hold_from is None and (at := text.find(OPEN, self.sent)) >= 0:
            self.hold_from = at
        if self.hold_from is not None:
            safe = self.hold_from
        else:
            safe = len(text) - next((k for k in range(min(len(OPEN) - 1, len(text)), 0, -1)
                                     if text.endswith(OPEN[:k])), 0)
        while safe > self.sent and text[safe - 1].isspace():
            safe -= 1
        return safe

    def finish(self) -> tuple[str, list[ToolCall]]:
        """``(content not sent yet, tool calls)`` once the reply ended; without calls, all the held text."""
        held = self.text[self.sent:]
        if parse_tool_calls(self.text).calls:
            parsed = parse_tool_calls(held)
            if parsed.calls:
                return (("\n" if self.sent and parsed.content else "") + (parsed.content or "")), parsed.calls
        return held, []
