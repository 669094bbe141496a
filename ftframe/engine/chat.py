"""Render conversations with the model's own chat template and mark the tokens that carry loss.

Training and inference use the *same* template: the prompt a predictor sends is exactly the prefix that
training rendered before the assistant reply. Only assistant messages (with ``weight`` != 0) are
trained; the role header (the template's generation prompt) is not, the reply and its end-of-turn
token are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftframe.api import Message
from ftframe.errors import DataError


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    """Token id where the position is trained, ``-100`` elsewhere (already aligned, not shifted)."""
    truncated: bool = False
    """The conversation was longer than ``max_length`` and was cut."""

    @property
    def n_trained(self) -> int:
        return sum(1 for t in self.labels if t != -100)


def _plain(messages: Sequence[Message]) -> list[dict[str, Any]]:
    # Templates expect role/content (and tool fields); our own keys such as `weight` stay out.
    return [{k: v for k, v in m.items() if k != "weight"} for m in messages]


def render(tokenizer: Any, messages: Sequence[Message], *, generation_prompt: bool = False,
           tools: list | None = None) -> str:
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": generation_prompt}
    if tools:
        kwargs["tools"] = tools
    return tokenizer.apply_chat_template(_plain(messages), **kwargs)


def trained_spans(tokenizer: Any, messages: Sequence[Message], tools: list | None = None) -> tuple[str, list[tuple[int, int]]]:
    """The full rendered text and the character spans that carry loss."""
    text = render(tokenizer, messages, tools=tools)
    spans: list[tuple[int, int]] = []
    for i, msg in enumerate(messages):
        if msg.get("role") != "assistant" or msg.get("weight", 1) == 0:
            continue
        head = render(tokenizer, messages[:i], generation_prompt=True, tools=tools) if i else ""
        upto = render(tokenizer, messages[: i + 1], tools=tools)
        if not text.startswith(upto) or not upto.startswith(head):
            raise DataError(
                "The chat template does not render conversations prefix-stably (message "
                f"{i} changes earlier text), so trained tokens cannot be located. Use a model whose "
                "template renders each turn independently, or supply a template."
            )
        end = len(upto.rstrip())  # the reply and its end-of-turn marker, not the separator after it
        spans.append((len(head), end))
    return text, spans


def encode(tokenizer: Any, messages: Sequence[Message], *, max_length: int | None = None,
           tools: list | None = None) -> Encoded:
    """Token ids and loss labels for one conversation (truncated to ``max_length`` from the right)."""
    text, spans = trained_spans(tokenizer, messages, tools)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = enc["input_ids"]
    labels = [-100] * len(ids)
    for j, (start, end) in enumerate(enc["offset_mapping"]):
        if end > start and any(s <= start and end <= e for s, e in spans):
            labels[j] = ids[j]
    if max_length is not None and len(ids) > max_length:
        return Encoded(ids[:max_length], labels[:max_length], truncated=True)
    return Encoded(ids, labels)


def pad_id(tokenizer: Any) -> int:
    """The id batches are padded with: the tokenizer's pad token, else its eos (as training pads)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def prompt_ids(tokenizer: Any, messages: Sequence[Message], tools: list | None = None) -> list[int]:
    """Token ids of the prompt exactly as training saw it before an assistant reply."""
    return tokenizer(render(tokenizer, messages, generation_prompt=True, tools=tools),
                     add_special_tokens=False)["input_ids"]
