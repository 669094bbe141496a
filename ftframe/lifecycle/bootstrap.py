"""Paired bootstrap of every metric's values over examples: the difference B − A with a confidence interval.

Pairing: both systems answered the same examples, so each resample draws example indices once and scores
A's and B's predictions at those same indices; the spread of B − A over resamples is then the spread due
to which examples happened to be in the set, with the per-example correlation of the two systems kept
(much narrower than two independent intervals). Every metric plugin's own ``compute`` scores each
resample, so any task metric works unchanged — macro-F1, exact match, ROUGE-L, a third-party one.

Quantities: each metric's scalar ``values``, and from its ``details`` every ``per_<group>`` table
(``per_class`` of macro-F1, ``per_field`` of field-F1) as ``per_class[billing].f1``.

Interval: percentile bootstrap (Efron & Tibshirani 1993, ch. 13) of B − A; two-sided p-value: twice the
smaller share of resamples on either side of zero (capped at 1). numpy draws the indices (seeded).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ftframe.api import Metric, MetricContext, MetricResult, Prediction, TaskInfo


@dataclass
class Delta:
    """One quantity of A and of B on the same examples, and the bootstrap distribution of B − A."""

    name: str
    metric: str
    """The metric plugin that computed it."""
    a: float | None
    b: float | None
    low: float | None
    high: float | None
    p_value: float | None
    higher_is_better: bool | None
    """The direction that is better: the headline value of a metric follows its ``higher_is_better``,
    ``per_*`` F1 scores are better higher, other values have no known direction (None)."""

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def gain(self) -> float | None:
        """B − A turned so that positive is better for B (None without a known direction)."""
        d = self.delta
        if d is None or self.higher_is_better is None:
            return None
        return d if self.higher_is_better else -d

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    @property
    def verdict(self) -> str:
        """``B better``, ``B worse``, ``B higher``/``B lower`` (no known direction) or ``no difference``."""
        if not self.significant or self.delta is None:
            return "no difference"
        up = self.low is not None and self.low > 0
        if self.higher_is_better is None:
            return "B higher" if up else "B lower"
        return "B better" if up == self.higher_is_better else "B worse"

    @property
    def worst_gain(self) -> float | None:
        """The pessimistic end of the interval, turned like :attr:`gain`."""
        if self.low is None or self.high is None or self.higher_is_better is None:
            return None
        return self.low if self.higher_is_better else -self.high

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "metric": self.metric, "a": self.a, "b": self.b, "delta": self.delta,
                "ci_low": self.low, "ci_high": self.high, "p_value": self.p_value,
                "higher_is_better": self.higher_is_better, "verdict": self.verdict}


def quantities(metric_name: str, metric: Metric, result: MetricResult) -> dict[str, tuple[float, bool | None]]:
    """``name -> (value, higher_is_better)`` of one metric result (see the module docstring)."""
    out: dict[str, tuple[float, bool | None]] = {}
    for name, value in result.values.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = (float(value), metric.higher_is_better if name == metric_name else None)
    for group, table in (result.details or {}).items():
        if not (group.startswith("per_") and isinstance(table, Mapping)):
            continue
        for key, row in table.items():
            if isinstance(row, Mapping) and isinstance(row.get("f1"), int | float):
                out[f"{group}[{key}].f1"] = (float(row["f1"]), True)
    return out


def compute(metric: Metric, predictions: Sequence[Prediction], task: TaskInfo) -> MetricResult:
    """The metric on ``predictions`` with an empty context (no run dir): nothing is written (no plot, no
    audit file)."""
    if "context" in inspect.signature(metric.compute).parameters:
        return metric.compute(predictions, task, context=MetricContext())  # type: ignore[call-arg]
    return metric.compute(predictions, task)


def paired_bootstrap(a: Sequence[Prediction], b: Sequence[Prediction], metrics: Mapping[str, Metric],
                     task: TaskInfo, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                     progress: Callable[[int], None] | None = None) -> list[Delta]:
    """Every quantity of every metric for A and B (``a[i]`` and ``b[i]`` answer the same example), with the
    paired percentile-bootstrap interval of B − A at ``confidence``."""
    import numpy as np

    if len(a) != len(b) or not a:
        raise ValueError(f"paired bootstrap needs two equally long, non-empty prediction lists ({len(a)}, {len(b)})")
    n = len(a)
    rng = np.random.default_rng(seed)
    full: dict[str, dict[str, Any]] = {}
    for name, metric in metrics.items():
        qa, qb = quantities(name, metric, compute(metric, a, task)), quantities(name, metric, compute(metric, b, task))
        full[name] = {"a": qa, "b": qb, "draws": {k: [] for k in set(qa) & set(qb)}}
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n)
        ra, rb = [a[i] for i in idx], [b[i] for i in idx]
        for name, metric in metrics.items():
            da, db = quantities(name, metric, compute(metric, ra, task)), quantities(name, metric, compute(metric, rb, task))
            for key, draws in full[name]["draws"].items():
                # a per-class score absent from a resample (no example of that class drawn) is left out
                draws.append(db[key][0] - da[key][0] if key in da and key in db else math.nan)
        if progress:
            progress(1)
    alpha = (1 - confidence) / 2
    out: list[Delta] = []
    for name, info in full.items():
        for key in sorted(info["draws"], key=lambda k: (k.startswith("per_"), k != name, k)):
            arr = np.asarray(info["draws"][key], dtype=float)
            arr = arr[~np.isnan(arr)]
            low = high = p = None
            if arr.size:
                low, high = float(np.quantile(arr, alpha)), float(np.quantile(arr, 1 - alpha))
                p = float(min(1.0, 2 * min((arr <= 0).mean(), (arr >= 0).mean())))
            (va, direction), (vb, _) = info["a"][key], info["b"][key]
            out.append(Delta(name=key, metric=name, a=va, b=vb, low=low, high=high, p_value=p,
                             higher_is_better=direction))
    return out
