"""The drift score: how far served prompts have moved from the training prompts.

Statistic: the Jensen–Shannon divergence (base 2, in [0, 1]) between the word unigram+bigram
distributions of the two sets of prompts, each prompt weighted equally (so a few very long prompts do not
dominate), with a permutation test for its significance. The score is the observed divergence minus its
mean over the permutations (the prompts of both sets pooled and split again at random): the raw
divergence of two finite samples is above zero even when they come from one distribution — the more so
the smaller and more varied they are — and subtracting the permutation mean removes that sampling floor,
so the score is about 0 without drift whatever the sample sizes. The p-value is the share of
permutations with a divergence at least the observed one.

Why this statistic: no embedding model ships here, and a text-classifier two-sample test would need a
trained model per check; word distributions need only counts, are symmetric and bounded (unlike KL
divergence, infinite on a word the training data never had), and say *which* words drifted (the
largest contributions are reported). Bigrams catch reordered or templated text that unigrams miss. What
it does not see: a change in meaning with the same words; a change of the system prompt (system
messages are left out, as a deployment may add its own).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ftframe.lifecycle import LifecycleError

WORD = re.compile(r"\w+", re.UNICODE)
DEFAULT_PERMUTATIONS = 200
DEFAULT_MAX_PROMPTS = 5000
"""Prompts per side at most (a seeded random sample beyond that): the test's cost grows with the tokens."""


def prompt_text(messages: Iterable[dict[str, Any]]) -> str:
    """What a user sent: the text of every non-system message of a prompt."""
    from ftframe.lifecycle.request_log import message_text

    return "\n".join(message_text(m.get("content")) for m in messages if m.get("role") not in ("system", "developer"))


def features(text: str) -> list[str]:
    """Lower-cased word unigrams and bigrams."""
    words = [w.lower() for w in WORD.findall(text)]
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


@dataclass
class DriftResult:
    statistic: str
    score: float
    """Observed divergence minus its permutation mean (about 0 without drift)."""
    divergence: float
    null_mean: float
    null_high: float
    """The 99th percentile of the permutation divergences."""
    p_value: float
    reference: int
    served: int
    permutations: int
    top_terms: list[dict[str, Any]] = field(default_factory=list)
    """The words/bigrams contributing most to the divergence, more frequent in served prompts."""

    def drifted(self, *, max_score: float, alpha: float) -> bool:
        """Significant (``p_value <= alpha``) and large enough (``score > max_score``)."""
        return self.p_value <= alpha and self.score > max_score

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _jsd(p: Any, q: Any) -> float:
    import numpy as np

    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        b = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float((a + b) / 2)


def drift_score(reference: Sequence[str], served: Sequence[str], *, permutations: int = DEFAULT_PERMUTATIONS,
                seed: int = 0, max_prompts: int = DEFAULT_MAX_PROMPTS) -> DriftResult:
    """The drift of ``served`` prompt texts from ``reference`` (training) prompt texts (module docstring)."""
    import numpy as np

    if not reference or not served:
        raise LifecycleError(f"drift needs prompts on both sides ({len(reference)} training, {len(served)} served).")
    rng = np.random.default_rng(seed)

    def sample(texts: Sequence[str]) -> list[str]:
        if len(texts) <= max_prompts:
            return list(texts)
        return [texts[i] for i in sorted(rng.choice(len(texts), size=max_prompts, replace=False))]

    ref, srv = sample(reference), sample(served)
    vocab: dict[str, int] = {}
    ids, owner, weight = [], [], []
    for j, text in enumerate([*ref, *srv]):
        feats = features(text)
        for f in feats:
            ids.append(vocab.setdefault(f, len(vocab)))
            owner.append(j)
            weight.append(1.0 / len(feats))
    if not vocab:
        raise LifecycleError("drift: the prompts hold no words on either side.")
    ids_a, owner_a, weight_a = np.asarray(ids), np.asarray(owner), np.asarray(weight)
    size = len(vocab)
    n_ref = len(ref)
    labels = np.r_[np.zeros(n_ref, dtype=bool), np.ones(len(srv), dtype=bool)]

    def split(is_served: Any) -> tuple[Any, Any]:
        mask = is_served[owner_a]
        p = np.bincount(ids_a[~mask], weights=weight_a[~mask], minlength=size)
        q = np.bincount(ids_a[mask], weights=weight_a[mask], minlength=size)
        return p / max(p.sum(), 1e-12), q / max(q.sum(), 1e-12)

    p, q = split(labels)
    observed = _jsd(p, q)
    null = np.asarray([_jsd(*split(rng.permutation(labels))) for _ in range(permutations)])
    p_value = float((1 + (null >= observed - 1e-12).sum()) / (1 + permutations))
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        contrib = 0.5 * (np.where(p > 0, p * np.log2(p / m), 0.0) + np.where(q > 0, q * np.log2(q / m), 0.0))
    words = {i: w for w, i in vocab.items()}
    top = [{"term": words[int(i)], "served_share": round(float(q[i]), 5), "training_share": round(float(p[i]), 5)}
           for i in np.argsort(-contrib)[:50] if q[i] > p[i]][:10]
    return DriftResult(statistic="jensen_shannon_words", score=observed - float(null.mean()), divergence=observed,
                       null_mean=float(null.mean()), null_high=float(np.quantile(null, 0.99)), p_value=p_value,
                       reference=len(ref), served=len(srv), permutations=permutations, top_terms=top)
