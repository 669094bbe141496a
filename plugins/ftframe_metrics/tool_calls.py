"""Tool-call metrics: were the right functions called, with the right arguments?

Both sides go through :func:`ftframe.tool_calls.parse_tool_calls`: the prediction is the model's text (Qwen2.5 /
Hermes ``<tool_call>`` blocks, or a bare ``{"name", "arguments"}`` JSON reply), the gold is the example's last
assistant message, whose ``tool_calls`` reach the metric as ``<tool_call>`` blocks (``Example.target``). Two
calls are the same call when their names are equal and their arguments are equal after JSON normalisation
(a JSON string or an object, parsed, keys sorted). Calls are compared as multisets: order does not matter.

* ``tool_calls`` (headline): share of examples whose calls are exactly the gold calls, names and arguments (an
  example whose gold makes no call is right when the model makes none);
* ``tool_name_accuracy``: share of examples that call the gold functions (as a multiset), arguments aside;
* ``tool_call_precision`` / ``tool_call_recall`` / ``tool_call_f1``: micro-averaged over calls.

A ``<tool_call>`` block that does not parse counts as no call (and is listed under ``malformed``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from ftframe.api import Metric, MetricResult, Prediction, TaskInfo
from ftframe.tool_calls import parse_tool_calls
from ftframe_metrics.structured import _prf

SHOWN = 20
"""Mismatching examples listed in the details."""


class ToolCalls(Metric):
    """Tool calls against the gold calls: exact (name and JSON-normalised arguments), name accuracy, call F1."""

    name = "tool_calls"

    def compute(self, predictions: Sequence[Prediction], task: TaskInfo) -> MetricResult:
        exact = names_right = tp = fp = fn = 0
        malformed, with_calls, misses = 0, 0, []
        per_function: dict[str, Counter[str]] = {}
        for p in predictions:
            gold = Counter(c.key() for c in parse_tool_calls(p.gold).calls)
            parsed = parse_tool_calls(p.predicted)
            pred = Counter(c.key() for c in parsed.calls)
            malformed += len(parsed.malformed)
            with_calls += bool(gold)
            hit = gold & pred
            tp, fp, fn = tp + sum(hit.values()), fp + sum((pred - gold).values()), fn + sum((gold - pred).values())
            for (fname, _), n in gold.items():
                stats = per_function.setdefault(fname, Counter())
                stats["gold"] += n
                stats["exact"] += hit[(fname, _)]
            exact += gold == pred
            names_right += Counter(k[0] for k in gold.elements()) == Counter(k[0] for k in pred.elements())
            if gold != pred and len(misses) < SHOWN:
                misses.append({"source": p.source, "gold": p.gold, "predicted": p.predicted,
                               **({"malformed": parsed.malformed} if parsed.malformed else {})})
        n = len(predictions)
        precision, recall, f1 = _prf(tp, fp, fn)
        values = {"tool_calls": exact / n if n else 0.0, "tool_name_accuracy": names_right / n if n else 0.0,
                  "tool_call_precision": precision, "tool_call_recall": recall, "tool_call_f1": f1}
        details: dict[str, Any] = {
            "n": n, "examples_with_gold_calls": with_calls, "gold_calls": tp + fn, "predicted_calls": tp + fp,
            "matched_calls": tp, "malformed": malformed,
            "per_function": {k: {"gold": v["gold"], "exact": v["exact"]} for k, v in sorted(per_function.items())},
            "mismatch_examples": misses}
        return MetricResult(values, details)
