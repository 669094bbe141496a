"""Evaluate a predictor on examples: predictions first, then every configured metric on them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ftframe.api import Example, Metric, Prediction, Predictor, TaskInfo

MODES = ("generate", "score", "both")


def predict(predictor: Predictor, examples: Sequence[Example], task: TaskInfo, *, mode: str,
            max_new_tokens: int, progress: Callable[[int], None] | None = None) -> list[Prediction]:
    """One :class:`Prediction` per example, by greedy generation or by scoring the label set."""
    prompts = [ex.prompt for ex in examples]
    if mode == "score":
        if not task.labels:
            raise ValueError("label scoring needs the task's label set (task.labels)")
        table = predictor.score(prompts, task.labels, progress=progress)
        answers, scores = [], []
        for row in table:
            best = max(range(len(row)), key=row.__getitem__)
            answers.append(task.labels[best])
            scores.append(dict(zip(task.labels, row)))
    elif mode == "generate":
        answers = predictor.generate(prompts, max_new_tokens=max_new_tokens, progress=progress)
        scores = [None] * len(answers)
    else:
        raise ValueError(f"unknown prediction mode {mode!r}; expected 'generate' or 'score'")
    return [Prediction(i, ex.prompt, ex.target, ans, ex.source, sc)
            for i, (ex, ans, sc) in enumerate(zip(examples, answers, scores))]


def score_predictions(predictions: Sequence[Prediction], metrics: Mapping[str, Metric],
                      task: TaskInfo) -> dict[str, Any]:
    """``{"values": {name: float}, "details": {metric: {...}}}`` from every metric."""
    values: dict[str, float] = {}
    details: dict[str, Any] = {}
    for name, metric in metrics.items():
        res = metric.compute(predictions, task)
        values.update(res.values)
        if res.details:
            details[name] = res.details
    return {"values": values, "details": details}
