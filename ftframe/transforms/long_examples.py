"""Examples longer than ``max_length`` tokens: ``truncate`` (the backend cuts them from the end), ``drop``
(kept in rejected.jsonl with the reason), or ``chunk``.

``chunk`` splits a conversation at turn boundaries (before a user message, so a tool call stays with its
result) into windows that fit ``max_length``. Every window starts with the conversation's leading system
message(s); the next window repeats the last ``overlap`` exchanges of the previous one as context, with
their assistant replies set to ``weight: 0`` so no reply is trained twice. Each reply is thus trained
exactly once, with as much preceding conversation as fits. A single exchange that alone is too long (for
example one long document and its answer) cannot be split without losing its reply, so it stays whole
and is truncated like ``truncate`` (counted in the report). Preference pairs are never chunked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ftframe.api import Example, Message, Rejected
from ftframe.engine.chat import render

POLICIES = ("truncate", "drop", "chunk")


def n_tokens(tokenizer: Any, ex: Example) -> int:
    """Rendered length of the example (for a pair: the longer side)."""
    convs = [[*ex.messages, ex.chosen], [*ex.messages, ex.rejected]] if ex.is_preference else [ex.messages]
    return max(len(tokenizer(render(tokenizer, c, tools=ex.tools), add_special_tokens=False)["input_ids"])
               for c in convs)


def _exchanges(messages: Sequence[Message]) -> tuple[list[Message], list[list[Message]]]:
    """Leading system messages, and the rest cut before each user message."""
    k = 0
    while k < len(messages) and messages[k].get("role") == "system":
        k += 1
    groups: list[list[Message]] = []
    for m in messages[k:]:
        if m.get("role") == "user" or not groups:
            groups.append([])
        groups[-1].append(m)
    return list(messages[:k]), groups


def _as_context(group: list[Message]) -> list[Message]:
    return [{**m, "weight": 0} if m.get("role") == "assistant" else m for m in group]


def chunk(tokenizer: Any, ex: Example, max_length: int, overlap: int) -> list[Example]:
    """``ex`` as windows of whole exchanges that fit ``max_length`` (see the module docstring)."""
    system, groups = _exchanges(ex.messages)

    def fits(context: list[list[Message]], window: list[list[Message]]) -> bool:
        msgs = system + [m for g in context for m in _as_context(g)] + [m for g in window for m in g]
        return n_tokens(tokenizer, replace(ex, messages=msgs)) <= max_length

    chunks: list[tuple[list[list[Message]], list[list[Message]]]] = []
    i = 0
    while i < len(groups):
        context = groups[max(0, i - overlap):i] if chunks else []
        while context and not fits(context, [groups[i]]):
            context = context[1:]  # less context rather than no room for the reply
        window = [groups[i]]
        j = i + 1
        while j < len(groups) and fits(context, window + [groups[j]]):
            window.append(groups[j])
            j += 1
        chunks.append((context, window))
        i = j
    out = []
    for n, (context, window) in enumerate(chunks, start=1):
        msgs = system + [m for g in context for m in _as_context(g)] + [m for g in window for m in g]
        if not any(m.get("role") == "assistant" and m.get("weight", 1) != 0 for m in msgs):
            continue  # a window of user turns only teaches nothing
        out.append(replace(ex, messages=msgs, source=f"{ex.source} (chunk {n}/{len(chunks)})"))
    return out


def handle_too_long(tokenizer: Any, examples: Sequence[Example], max_length: int, policy: str,
                    overlap: int = 1) -> tuple[list[Example], list[Rejected], dict[str, Any]]:
    """Apply ``policy`` to the examples over ``max_length``: the examples to train on, the dropped ones, and
    counts for the manifest."""
    kept: list[Example] = []
    dropped: list[Rejected] = []
    info: dict[str, Any] = {"policy": policy, "max_length": max_length, "over": 0, "dropped": 0, "chunked": 0,
                            "chunks": 0, "still_truncated": 0}
    for ex in examples:
        length = n_tokens(tokenizer, ex)
        if length <= max_length or policy == "truncate":
            info["over"] += length > max_length
            kept.append(ex)
            continue
        info["over"] += 1
        if policy == "drop":
            info["dropped"] += 1
            dropped.append(Rejected(ex.source, f"{length} tokens, longer than backend.max_length={max_length} "
                                               f"(transforms.too_long=drop)", ex.to_record(), "too_long"))
            continue
        parts = [ex] if ex.is_preference else chunk(tokenizer, ex, max_length, overlap)
        info["chunked"] += 1
        info["chunks"] += len(parts)
        info["still_truncated"] += sum(1 for p in parts if n_tokens(tokenizer, p) > max_length)
        kept.extend(parts)
    return kept, dropped, info
