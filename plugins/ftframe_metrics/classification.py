"""Label metrics with torchmetrics: macro-F1 (with per-class scores and a confusion matrix) and accuracy.

An answer outside the label set is not mapped to a label: it counts as wrong for its gold class, is
counted under ``invalid`` (its own column of the confusion matrix), and its examples are listed in the
details.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ftframe.api import Metric, MetricContext, MetricResult, Prediction, TaskInfo
from ftframe.errors import ConfigError
from ftframe_metrics.plots import confusion_matrix_png

if TYPE_CHECKING:  # torch and torchmetrics are imported when a metric computes (plugin classes import light)
    import torch

INVALID = "(invalid)"
"""The confusion matrix's column for answers outside the label set."""


def _encode(predictions: Sequence[Prediction], task: TaskInfo) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Labels (gold ∪ valid predicted, in task order) and index tensors; index ``len(labels)`` = invalid."""
    import torch

    if not task.labels:
        raise ConfigError(f"task {task.name!r}: classification metrics need a label set (task.labels).")
    allowed = list(task.labels)
    index = {label: i for i, label in enumerate(allowed)}
    gold = [(p.gold or "").strip() for p in predictions]
    unknown_gold = sorted({g for g in gold if g not in index})
    if unknown_gold:
        allowed += unknown_gold
        index = {label: i for i, label in enumerate(allowed)}
    preds = torch.tensor([index.get(p.predicted.strip(), len(allowed)) for p in predictions])
    target = torch.tensor([index[g] for g in gold])
    return allowed, preds, target


def _present(labels: list[str], preds: torch.Tensor, target: torch.Tensor) -> list[int]:
    """Classes that occur in gold or valid predictions (as scikit-learn's macro average uses)."""
    seen = set(target.tolist()) | {i for i in preds.tolist() if i < len(labels)}
    return sorted(seen)


class MacroF1(Metric):
    """Macro-averaged F1 over the labels present, plus per-class precision/recall/F1 and invalid answers."""

    name = "macro_f1"

    def compute(self, predictions: Sequence[Prediction], task: TaskInfo,
                context: MetricContext | None = None) -> MetricResult:
        if not predictions:
            return MetricResult({"macro_f1": 0.0, "invalid_rate": 0.0}, {"n": 0})
        from torchmetrics.classification import (
            MulticlassConfusionMatrix,
            MulticlassF1Score,
            MulticlassPrecision,
            MulticlassRecall,
        )

        labels, preds, target = _encode(predictions, task)
        k = len(labels) + 1  # the last class collects answers outside the label set
        f1 = MulticlassF1Score(num_classes=k, average="none", zero_division=0)(preds, target)
        prec = MulticlassPrecision(num_classes=k, average="none", zero_division=0)(preds, target)
        rec = MulticlassRecall(num_classes=k, average="none", zero_division=0)(preds, target)
        present = _present(labels, preds, target)
        macro = float(f1[present].mean()) if present else 0.0
        support = Counter(target.tolist())
        per_class = {labels[i]: {"precision": round(float(prec[i]), 4), "recall": round(float(rec[i]), 4),
                                 "f1": round(float(f1[i]), 4), "support": support.get(i, 0)}
                     for i in range(len(labels))}
        invalid = [p for p in predictions if p.predicted.strip() not in labels]
        # rows: gold labels; columns: predicted labels, then answers outside the label set
        matrix = MulticlassConfusionMatrix(num_classes=k)(preds, target)[: len(labels)].tolist()
        details = {"per_class": per_class, "invalid": len(invalid),
                   "invalid_examples": [{"source": p.source, "predicted": p.predicted, "gold": p.gold}
                                        for p in invalid[:20]],
                   "confusion_matrix": {"rows": labels, "columns": [*labels, INVALID], "counts": matrix}}
        if context is not None and context.run_dir is not None:
            path = context.run_dir / f"{context.prefix}confusion_matrix.png"
            confusion_matrix_png(path, labels, [*labels, INVALID], matrix,
                                 title=f"{task.name}: confusion matrix ({len(predictions)} examples)")
            details["confusion_matrix_png"] = str(path)
        return MetricResult({"macro_f1": macro, "invalid_rate": len(invalid) / max(len(predictions), 1)}, details)


class Accuracy(Metric):
    """Share of answers equal to the gold label (after stripping surrounding whitespace)."""

    name = "accuracy"

    def compute(self, predictions: Sequence[Prediction], task: TaskInfo) -> MetricResult:
        if not predictions:
            return MetricResult({"accuracy": 0.0}, {"n": 0})
        from torchmetrics.classification import MulticlassAccuracy

        labels, preds, target = _encode(predictions, task)
        acc = MulticlassAccuracy(num_classes=len(labels) + 1, average="micro")(preds, target)
        return MetricResult({"accuracy": float(acc)})
