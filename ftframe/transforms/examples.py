"""Transformations over canonical examples: deduplication and PII redaction (before splitting, so a copy
cannot land in both train and test), each returning what it did for the manifest."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ftframe.api import Example, Message, Rejected
from ftframe.preflight.overlap import record_key
from ftframe.transforms.pii import KINDS, redact


def dedup(examples: Sequence[Example]) -> tuple[list[Example], list[Rejected]]:
    """The first of each group of exact duplicates; the later copies as rejected rows naming the first."""
    first: dict[str, str] = {}
    kept: list[Example] = []
    dropped: list[Rejected] = []
    for ex in examples:
        key = record_key(ex)
        if key in first:
            dropped.append(Rejected(ex.source, f"exact duplicate of {first[key]} (transforms.dedup=true)",
                                    ex.to_record(), "duplicate"))
            continue
        first[key] = ex.source
        kept.append(ex)
    return kept, dropped


def sample(examples: Sequence[Example], n: int, seed: int) -> list[Example]:
    """``n`` of ``examples`` drawn without replacement with ``seed``, in their file order (all of them when
    there are no more than ``n``)."""
    import random

    if n >= len(examples):
        return list(examples)
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


def _redact_message(m: Message | None, kinds: tuple[str, ...], counts: Counter[str]) -> Message | None:
    if m is None:
        return None
    out = dict(m)
    if isinstance(out.get("content"), str):
        out["content"], found = redact(out["content"], kinds)
        counts.update(found)
    for call in out.get("tool_calls") or []:
        fn = call.get("function") or {}
        if isinstance(fn.get("arguments"), str):
            fn["arguments"], found = redact(fn["arguments"], kinds)
            counts.update(found)
    return out


def redact_examples(examples: Sequence[Example], kinds: Sequence[str]) -> tuple[list[Example], dict[str, Any]]:
    """Copies of ``examples`` with PII replaced by typed placeholders, and the counts per placeholder and
    the number of examples touched."""
    wanted = tuple(KINDS if "all" in kinds else kinds)
    counts: Counter[str] = Counter()
    out, touched = [], 0
    for ex in examples:
        before = sum(counts.values())
        new = copy.deepcopy(ex)
        new.messages = [_redact_message(m, wanted, counts) for m in new.messages]  # type: ignore[misc]
        new.chosen = _redact_message(new.chosen, wanted, counts)
        new.rejected = _redact_message(new.rejected, wanted, counts)
        touched += sum(counts.values()) > before
        out.append(new)
    return out, {"kinds": list(wanted), "replaced": dict(sorted(counts.items())), "examples_changed": touched}
