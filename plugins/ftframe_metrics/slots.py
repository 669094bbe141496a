"""Slot-filling F1 as the span-extraction literature scores it (Span-ConveRT, Coope et al. 2020,
arXiv:2005.08866): one decision per (example, slot), micro-averaged over all slots.

The gold answer and the prediction are JSON objects mapping slot names to the value copied from the text
(``{"date": "Sunday, December 30", "people": "4"}``; ``{}`` when the text gives none). For every example
and every slot named by either side:

- gold and prediction give the slot the same value: a true positive;
- the prediction gives a value the gold does not have (another value, or a slot the gold lacks, or a slot
  name outside the task): a false positive — and, where the gold has another value, also a false
  negative (a partial or longer span is simply wrong, as in the paper);
- the gold has a value the prediction lacks: a false negative.

An example without slots answered ``{}`` adds nothing to any count: it is correct and neither rewards nor
costs anything (so the score is not inflated by the ~36% of Restaurant-8k utterances without slots; the
share of such examples answered ``{}`` is reported as ``empty_correct``). A prediction that is not a JSON
object misses every gold slot. Values are compared as strings after normalisation: leading/trailing
whitespace stripped and inner runs of whitespace collapsed to one space (``normalise=whitespace``, the
default); ``exact`` compares them untouched, ``lower`` also ignores case. A number predicted for a slot is
compared by its JSON text (``4`` and ``"4"`` match); a list or object as a value is never a span (a false
positive).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftframe.api import Metric, MetricResult, Prediction, TaskInfo
from ftframe.config import one_of
from ftframe_metrics.structured import _NOT_JSON, _prf, parse_json

NORMALISE = ("whitespace", "exact", "lower")
_SPACES = re.compile(r"\s+")


@dataclass
class SlotF1Config:
    normalise: str = "whitespace"
    """How values are compared: ``whitespace`` (strip, collapse inner whitespace), ``exact`` or ``lower``
    (whitespace and case)."""
    strip_code_fences: bool = False
    """Read an answer inside a Markdown code fence as its content (off: a wrapped answer is not JSON)."""

    def __post_init__(self) -> None:
        one_of("metrics.slot_f1.normalise", self.normalise, NORMALISE)


def _value(value: Any, normalise: str) -> str | None:
    """The comparable text of a slot value; ``None`` for a value that cannot be a span (list, object)."""
    if isinstance(value, dict | list):
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    if normalise == "exact":
        return text
    text = _SPACES.sub(" ", text.strip())
    return text.lower() if normalise == "lower" else text


def slots_of(text: str | None, normalise: str, *, strip_code_fences: bool = False) -> dict[str, str | None] | None:
    """``slot -> comparable value`` of a JSON-object answer, or ``None`` when it is not a JSON object."""
    value = parse_json(text, strip_code_fences=strip_code_fences)
    if value is _NOT_JSON or not isinstance(value, dict):
        return None
    return {str(k): _value(v, normalise) for k, v in value.items() if v is not None}


class SlotF1(Metric):
    """Slot-filling F1 (per example and slot, micro-averaged), with per-slot precision/recall/F1."""

    name = "slot_f1"
    Config = SlotF1Config

    def compute(self, predictions: Sequence[Prediction], task: TaskInfo) -> MetricResult:
        c = self.config
        tp: Counter[str] = Counter()
        fp: Counter[str] = Counter()
        fn: Counter[str] = Counter()
        empty = empty_right = not_object = 0
        errors: list[dict[str, Any]] = []
        for p in predictions:
            gold = slots_of(p.gold, c.normalise) or {}
            pred = slots_of(p.predicted, c.normalise, strip_code_fences=c.strip_code_fences)
            if pred is None:
                not_object += 1
            pred = pred or {}
            if not gold:
                empty += 1
                empty_right += not pred
            wrong = False
            for slot in sorted(set(gold) | set(pred)):
                g, v = gold.get(slot), pred.get(slot)
                if g is not None and v == g:
                    tp[slot] += 1
                    continue
                wrong = True
                if slot in pred:
                    fp[slot] += 1
                if g is not None:
                    fn[slot] += 1
            if wrong and len(errors) < 20:
                errors.append({"source": p.source, "predicted": p.predicted, "gold": p.gold})
        precision, recall, f1 = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
        per_slot = {}
        for slot in sorted(set(tp) | set(fp) | set(fn)):
            sp, sr, sf = _prf(tp[slot], fp[slot], fn[slot])
            per_slot[slot] = {"precision": round(sp, 4), "recall": round(sr, 4), "f1": round(sf, 4),
                              "support": tp[slot] + fn[slot]}
        values = {"slot_f1": f1, "slot_precision": precision, "slot_recall": recall}
        return MetricResult(values, {
            "n": len(predictions), "tp": sum(tp.values()), "fp": sum(fp.values()), "fn": sum(fn.values()),
            "per_slot": per_slot, "normalise": c.normalise, "not_json_object": not_object,
            "empty_gold": empty, "empty_correct": round(empty_right / empty, 4) if empty else None,
            "error_examples": errors})
