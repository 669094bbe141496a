"""Deterministic train/val/test splits, stratified by label for classification tasks."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from ftframe.api import Example
from ftframe.errors import ConfigError


def split_examples(examples: Sequence[Example], *, train: float, val: float, test: float, seed: int,
                   stratify: bool) -> dict[str, list[Example]]:
    """Split ``examples`` into ``train``/``val``/``test`` by the given shares (they must sum to 1).

    With ``stratify`` each gold answer (label) is split on its own, so every split keeps the label
    shares; rounding is per label. The same inputs and seed always give the same splits.
    """
    shares = {"train": train, "val": val, "test": test}
    if any(s < 0 for s in shares.values()) or abs(sum(shares.values()) - 1.0) > 1e-6:
        raise ConfigError(f"split.train + split.val + split.test must be 1 and none negative; got {shares}.")
    rng = random.Random(seed)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[(ex.target or "") if stratify else ""].append(i)
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for key in sorted(groups):
        idx = groups[key]
        rng.shuffle(idx)
        n_test, n_val = round(len(idx) * test), round(len(idx) * val)
        out["test"] += idx[:n_test]
        out["val"] += idx[n_test:n_test + n_val]
        out["train"] += idx[n_test + n_val:]
    result = {}
    for name, idx in out.items():
        rng.shuffle(idx)
        result[name] = [examples[i] for i in idx]
    return result
