"""Training-cost estimates: billed tokens per epoch, the epochs a job will run, and the price.

Token counts follow the OpenAI cookbook's ``num_tokens_from_messages`` (3 tokens of overhead per message
plus 3 per conversation, each example capped at the model's training context). The provider's own
tokenizer is not available offline (tiktoken downloads its vocabulary on first use), so content tokens
are estimated at 4 UTF-8 bytes per token — the usual rate for English text with these tokenizers; the
estimate is a budget guard, not an invoice.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ftframe.api import Example, Message

BYTES_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3
TOKENS_PER_CONVERSATION = 3

# OpenAI's rule for n_epochs="auto" (cookbook "Chat_finetuning_data_prep", cell "Pricing and default
# n_epochs estimate"): aim for 3 epochs, but at least 100 and at most 25,000 examples seen in total,
# within 1..25 epochs.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


def openai_default_epochs(n_examples: int) -> int:
    """The number of epochs OpenAI runs when ``n_epochs`` is ``auto``."""
    n = max(1, int(n_examples))
    if n * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n)
    if n * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n)
    return TARGET_EPOCHS


def text_tokens(value: Any) -> int:
    """Estimated tokens of one message field (strings as text, anything else as its JSON)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN) if text else 0


def message_tokens(messages: Iterable[Message]) -> int:
    """Estimated tokens of a conversation, the cookbook's way (overheads included)."""
    total = TOKENS_PER_CONVERSATION
    for message in messages:
        total += TOKENS_PER_MESSAGE + sum(text_tokens(v) for k, v in message.items() if k != "weight" and v)
    return total


def example_tokens(example: Example) -> int:
    """Billed tokens of one example: the conversation (and for a preference pair, both replies)."""
    n = message_tokens(example.messages)
    for reply in (example.chosen, example.rejected):
        if reply is not None:
            n += TOKENS_PER_MESSAGE + text_tokens(reply.get("content") or "")
    if example.tools:
        n += text_tokens(example.tools)
    return n


def billed_tokens_per_epoch(examples: Iterable[Example], max_tokens_per_example: int) -> int:
    """Estimated billed tokens of one pass over ``examples`` (each capped at the training context)."""
    return sum(min(max_tokens_per_example, example_tokens(ex)) for ex in examples)


def estimate(*, model: str, prices: Mapping[str, float], epochs: int, epochs_rule: str,
             billed_tokens_per_epoch: int, n_examples: int) -> dict[str, Any]:
    """The cost estimate as a plain dict (``usd`` is None when the price table lacks ``model``)."""
    per_million = prices.get(model)
    billed = int(billed_tokens_per_epoch) * int(epochs)
    usd = None if per_million is None else round(billed * float(per_million) / 1e6, 4)
    return {"model": model, "examples": int(n_examples), "billed_tokens_per_epoch": int(billed_tokens_per_epoch),
            "epochs": int(epochs), "epochs_rule": epochs_rule, "billed_tokens": billed,
            "usd_per_1m_tokens": per_million, "usd": usd}
