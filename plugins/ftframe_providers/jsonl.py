"""The prepared splits as provider training files: chat JSONL (supervised) or preference JSONL (DPO).

Both providers read OpenAI's shapes: ``{"messages": [...], "tools"?: [...]}`` per line for supervised
training, and ``{"input": {"messages": [...]}, "preferred_output": [reply], "non_preferred_output":
[reply]}`` for DPO. Only the message fields those formats define are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftframe.api import Example, Message
from ftframe.errors import DataError
from ftframe.io import write_jsonl

MESSAGE_FIELDS = {
    "system": ("role", "content", "name"),
    "developer": ("role", "content", "name"),
    "user": ("role", "content", "name"),
    "assistant": ("role", "content", "name", "weight", "tool_calls", "function_call", "refusal"),
    "tool": ("role", "content", "tool_call_id"),
    "function": ("role", "content", "name"),
}


def provider_message(message: Message) -> Message:
    """``message`` with only the fields the provider formats define for its role."""
    role = message.get("role")
    keep = MESSAGE_FIELDS.get(str(role), ("role", "content"))
    out = {k: message[k] for k in keep if k in message and message[k] is not None}
    if "content" not in out and not (role == "assistant" and (out.get("tool_calls") or out.get("function_call"))):
        out["content"] = ""
    return out


def chat_record(example: Example) -> dict[str, Any]:
    """One supervised line; a preference pair trains on its chosen reply."""
    messages = list(example.messages) + ([example.chosen] if example.chosen is not None else [])
    if not any(m.get("role") == "assistant" for m in messages):
        raise DataError(f"{example.source}: no assistant reply to train on (supervised fine-tuning needs one "
                        f"per example).")
    rec: dict[str, Any] = {"messages": [provider_message(m) for m in messages]}
    if example.tools:
        rec["tools"] = example.tools
    return rec


def preference_record(example: Example) -> dict[str, Any]:
    """One DPO line: the prompt conversation and the preferred / non-preferred reply."""
    if example.chosen is None or example.rejected is None:
        raise DataError(f"{example.source}: backend.method=dpo needs preference pairs (chosen and rejected "
                        f"replies) in every example; this one has none. Use preference data or method=supervised.")
    reply = lambda m: [provider_message({**m, "role": "assistant"})]
    inner: dict[str, Any] = {"messages": [provider_message(m) for m in example.messages]}
    if example.tools:
        inner["tools"] = example.tools
    return {"input": inner, "preferred_output": reply(example.chosen), "non_preferred_output": reply(example.rejected)}


def write_training_file(path: Path, examples: Sequence[Example], method: str) -> Path:
    """Write ``examples`` for ``method`` (``supervised`` or ``dpo``) to ``path`` atomically."""
    record = preference_record if method == "dpo" else chat_record
    return write_jsonl(path, (record(ex) for ex in examples))
