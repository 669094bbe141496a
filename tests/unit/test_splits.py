"""Deterministic, stratified train/val/test splits."""

from __future__ import annotations

from collections import Counter

import pytest

from ftframe.api import Example
from ftframe.engine.splits import split_examples
from ftframe.errors import ConfigError

SHARES = {"train": 0.6, "val": 0.2, "test": 0.2}
COUNTS = {"billing": 20, "technical": 10, "privacy": 5}


def make_examples() -> list[Example]:
    out = []
    for label, n in COUNTS.items():
        for i in range(n):
            out.append(Example(messages=[{"role": "user", "content": f"{label} {i}"},
                                         {"role": "assistant", "content": label}], source=f"{label}:{i}"))
    return out


def sources(splits) -> dict[str, list[str]]:
    return {k: [ex.source for ex in v] for k, v in splits.items()}


def test_same_seed_same_splits():
    a = split_examples(make_examples(), **SHARES, seed=7, stratify=True)
    b = split_examples(make_examples(), **SHARES, seed=7, stratify=True)
    assert sources(a) == sources(b)


def test_other_seed_other_splits():
    a = split_examples(make_examples(), **SHARES, seed=7, stratify=True)
    b = split_examples(make_examples(), **SHARES, seed=8, stratify=True)
    assert sources(a) != sources(b)


@pytest.mark.parametrize("stratify", [True, False])
def test_no_example_lost_or_duplicated(stratify):
    examples = make_examples()
    splits = split_examples(examples, **SHARES, seed=3, stratify=stratify)
    assert set(splits) == {"train", "val", "test"}
    got = [id(ex) for part in splits.values() for ex in part]
    assert len(got) == len(examples) == len(set(got))
    assert set(got) == {id(ex) for ex in examples}
    assert sum(len(v) for v in splits.values()) == len(examples)


def test_stratified_shares_per_label():
    splits = split_examples(make_examples(), **SHARES, seed=1, stratify=True)
    for name, part in splits.items():
        per_label = Counter(ex.target for ex in part)
        for label, n in COUNTS.items():
            assert per_label[label] >= 1, f"{label} missing from {name}"
            assert abs(per_label[label] - n * SHARES[name]) <= 1, (name, label, per_label)


def test_shares_must_sum_to_one():
    with pytest.raises(ConfigError, match="split"):
        split_examples(make_examples(), train=0.7, val=0.2, test=0.2, seed=0, stratify=True)
    with pytest.raises(ConfigError, match="split"):
        split_examples(make_examples(), train=1.2, val=-0.2, test=0.0, seed=0, stratify=True)
