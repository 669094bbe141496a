"""Token counts per example with the run's tokenizer and chat template: total and trained (loss) tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ftframe.api import Example
from ftframe.engine.chat import encode


@dataclass
class TokenCount:
    source: str
    total: int
    """Tokens of the rendered conversation (for a preference pair: the longer of prompt+chosen and
    prompt+rejected)."""
    trained: int
    """Tokens that carry loss (assistant replies with weight != 0; for a pair, the chosen reply)."""
    trained_after_cut: int
    """Trained tokens that survive truncation to ``max_length`` (equal to ``trained`` when not cut)."""


def count_tokens(tokenizer: Any, examples: Sequence[Example], max_length: int | None) -> list[TokenCount]:
    out = []
    for ex in examples:
        if ex.is_preference:
            a = encode(tokenizer, [*ex.messages, ex.chosen], tools=ex.tools)  # type: ignore[list-item]
            b = encode(tokenizer, [*ex.messages, ex.rejected], tools=ex.tools)  # type: ignore[list-item]
            full, total = a, max(len(a.input_ids), len(b.input_ids))
        else:
            full = encode(tokenizer, ex.messages, tools=ex.tools)
            total = len(full.input_ids)
        kept = full.labels[:max_length] if max_length else full.labels
        out.append(TokenCount(ex.source, total, full.n_trained, sum(1 for t in kept if t != -100)))
    return out


def distribution(values: Sequence[int]) -> dict[str, float]:
    """min / median / mean / p95 / max of ``values`` (zeros for none)."""
    if not values:
        return {"min": 0, "median": 0, "mean": 0, "p95": 0, "max": 0}
    arr = np.asarray(values, dtype=float)
    return {"min": int(arr.min()), "median": round(float(np.median(arr)), 1), "mean": round(float(arr.mean()), 1),
            "p95": round(float(np.percentile(arr, 95)), 1), "max": int(arr.max())}
