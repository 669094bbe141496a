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
from ftframe.tool_calls import message_tool_calls, template_arguments


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
    # Templates expect role/content (and tool fields); our own keys such as `weight` stay out. An assistant tool
    # call without text gets content "" (templates that write `message['content']` fail on a missing one), and
    # JSON-string tool-call arguments become objects, the shape Hugging Face templates render (`| tojson`).
    out = []
    for m in messages:
        plain = {k: v for k, v in m.items() if k != "weight"}
        if plain.get("content") is None:
            plain["content"] = ""
        out.append(template_arguments(plain))
    return out


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


def last_user_text(messages: Sequence[Message]) -> str:
    """The content of the last user message (``""`` when there is none): what extractive decoding copies
    values from."""
    return next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")


def pad_id(tokenizer: Any) -> int:
    """The id batches are padded with: the tokenizer's pad token, else its eos (as training pads)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def prompt_ids(tokenizer: Any, messages: Sequence[Message], tools: list | None = None) -> list[int]:
    """Token ids of the prompt exactly as training saw it before an assistant reply."""
    return tokenizer(render(tokenizer, messages, generation_prompt=True, tools=tools),
                     add_special_tokens=False)["input_ids"]


def tool_rendering_problem(tokenizer: Any, messages: Sequence[Message], tools: list | None = None) -> str | None:
    """What of a tool conversation the chat template leaves out of the text it renders, or None.

    A template that ignores ``tools``, ``tool_calls`` or ``tool`` messages (SmolLM2's writes only role and
    content) renders them as nothing: a tool call would silently vanish from the training text. Checked: the
    tool definitions change the text; each call's function name and top-level argument keys are in the text of
    its own assistant turn; each tool result's content is in the text.
    """
    has_calls = any(m.get("tool_calls") for m in messages)
    if not (tools or has_calls or any(m.get("role") == "tool" for m in messages)):
        return None
    text = render(tokenizer, messages, tools=tools)
    if tools and text == render(tokenizer, messages):
        names = [t.get("function", t).get("name") for t in tools if isinstance(t, dict)]
        return f"the tool definitions are not rendered (the text is the same without them: {', '.join(map(str, names[:3]))})"
    for i, m in enumerate(messages):
        if m.get("role") == "tool" and isinstance(m.get("content"), str) and m["content"].strip() not in text:
            return f"message {i}: the tool result is not rendered"
        if m.get("role") != "assistant" or not m.get("tool_calls"):
            continue
        head = render(tokenizer, messages[:i], generation_prompt=True, tools=tools) if i else ""
        turn = render(tokenizer, messages[: i + 1], tools=tools)[len(head):]
        for call in message_tool_calls(m):
            keys = list(call.arguments) if isinstance(call.arguments, dict) else []
            lost = [k for k in [call.name, *keys] if k not in turn]
            if lost:
                return f"message {i}: the tool call {call.name}(...) is not rendered ({', '.join(lost[:3])} missing)"
    return None
