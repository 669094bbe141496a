"""Evaluate a predictor on examples: predictions first, then every configured metric on them."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ftframe.api import Example, Metric, MetricContext, Prediction, Predictor, ReplyScorer, TaskInfo
from ftframe.errors import ConfigError
from ftframe.io import write_jsonl

MODES = ("generate", "score", "both")


def task_info(cfg: Any, examples: Sequence[Example] = (), labels: list[str] | None = None) -> TaskInfo:
    """The task of the run config ``cfg``; a classification task without labels (``labels`` or
    ``task.labels``) takes them from ``examples``' answers."""
    from omegaconf import OmegaConf

    labels = labels or (list(cfg.task.labels) if cfg.task.get("labels") else None)
    if cfg.task.type == "classification" and labels is None:
        labels = sorted({ex.target for ex in examples if ex.target is not None})
    schema = cfg.task.get("output_schema")
    schema = OmegaConf.to_container(schema, resolve=True) if OmegaConf.is_config(schema) else schema
    return TaskInfo(name=str(cfg.task.name), type=str(cfg.task.type), labels=labels, output_schema=schema)


def response_format(eval_config: Any, task: TaskInfo, predictor: Any = None) -> dict[str, Any] | None:
    """OpenAI's ``response_format`` that ``eval.response_format`` asks for on ``task`` (``None``: free
    text). ``auto`` is ``json_schema`` when the task has an output schema and ``predictor`` (when given)
    can constrain its decoding."""
    from ftframe.engine.constrain import response_format_for_schema

    kind = str(eval_config.response_format)
    if kind == "auto":
        if task.output_schema is None or (predictor is not None and not constrains(predictor)):
            return None
        kind = "json_schema"
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if task.output_schema is None:
        raise ConfigError("eval.response_format=json_schema needs the task's schema: set task.output_schema.")
    return response_format_for_schema(task.output_schema, name=task.name)


def decoding(eval_config: Any, task: TaskInfo, predictor: Any = None) -> dict[str, Any]:
    """How generated answers are decoded, as keyword arguments of :func:`evaluate` and :func:`predict`:
    the ``response_format`` (see :func:`response_format`), ``eval.json_whitespace`` and ``eval.extractive``."""
    return {"response_format": response_format(eval_config, task, predictor),
            "json_whitespace": str(getattr(eval_config, "json_whitespace", "compact")),
            "extractive": tuple(str(f) for f in getattr(eval_config, "extractive", None) or ())}


def constrains(predictor: Any) -> bool:
    """Whether ``predictor.generate`` takes a ``response_format`` (can decode under a schema)."""
    return "response_format" in inspect.signature(predictor.generate).parameters


def tools_argument(predictor: Any, examples: Sequence[Example]) -> dict[str, Any]:
    """``{"tools": [each example's tools]}`` for ``predictor.generate`` when an example has tools (its prompt is
    rendered with them, as training rendered it), else ``{}``; a predictor that cannot take them is a
    :class:`ConfigError` (its prompts would lack the tool definitions)."""
    if not any(ex.tools for ex in examples):
        return {}
    if "tools" not in inspect.signature(predictor.generate).parameters:
        raise ConfigError(f"The examples have tools, but the predictor {getattr(predictor, 'name', predictor)!r} "
                          f"cannot put tool definitions into its prompts; evaluate with a local model.")
    return {"tools": [ex.tools for ex in examples]}


def predict(predictor: Predictor, examples: Sequence[Example], task: TaskInfo, *, mode: str,
            max_new_tokens: int, progress: Callable[[int], None] | None = None,
            response_format: dict[str, Any] | None = None, json_whitespace: str = "compact",
            extractive: Sequence[str] = ()) -> list[Prediction]:
    """One :class:`Prediction` per example, by greedy generation (under ``response_format`` when given,
    ``extractive`` properties copied from each prompt) or by scoring the label set."""
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
        extra = tools_argument(predictor, examples)
        if response_format is None:
            answers = predictor.generate(prompts, max_new_tokens=max_new_tokens, progress=progress, **extra)
        elif not constrains(predictor):
            raise ConfigError(f"The predictor {predictor.name!r} cannot constrain its decoding to a response "
                              f"format; set eval.response_format=text (or auto).")
        else:
            if extractive:
                if "extractive" not in inspect.signature(predictor.generate).parameters:
                    raise ConfigError(f"The predictor {predictor.name!r} cannot copy values from the prompt "
                                      f"(eval.extractive); evaluate with a local model or set eval.extractive=[].")
                extra["extractive"] = tuple(extractive)
            answers = predictor.generate(prompts, max_new_tokens=max_new_tokens, progress=progress,  # type: ignore[call-arg]
                                         response_format=response_format, json_whitespace=json_whitespace, **extra)
        scores = [None] * len(answers)
    else:
        raise ValueError(f"unknown prediction mode {mode!r}; expected 'generate' or 'score'")
    return [Prediction(i, ex.prompt, ex.target, ans, ex.source, sc)
            for i, (ex, ans, sc) in enumerate(zip(examples, answers, scores))]


def attach_reference_loglik(predictor: Predictor, predictions: Sequence[Prediction],
                             progress: Callable[[int], None] | None = None) -> None:
    """Fill ``reference_loglik``/``reference_tokens`` of each prediction with a gold answer."""
    if not isinstance(predictor, ReplyScorer):
        raise ConfigError(f"The predictor {predictor.name!r} cannot score a given reply (no loglik()), so "
                          f"perplexity cannot be computed; remove it from metrics.")
    todo = [p for p in predictions if p.gold]
    for p, (ll, n) in zip(todo, predictor.loglik([p.prompt for p in todo], [p.gold for p in todo],  # type: ignore[misc]
                                                 progress=progress)):
        p.reference_loglik, p.reference_tokens = ll, n


def _accepts_context(metric: Metric) -> bool:
    return "context" in inspect.signature(metric.compute).parameters


def score_predictions(predictions: Sequence[Prediction], metrics: Mapping[str, Metric],
                      task: TaskInfo, context: MetricContext | None = None) -> dict[str, Any]:
    """``{"values": {name: float}, "details": {metric: {...}}}`` from every metric.

    ``context`` reaches the metrics whose ``compute`` takes a ``context`` argument.
    """
    values: dict[str, float] = {}
    details: dict[str, Any] = {}
    for name, metric in metrics.items():
        if _accepts_context(metric):
            res = metric.compute(predictions, task, context=context or MetricContext())  # type: ignore[call-arg]
        else:
            res = metric.compute(predictions, task)
        values.update(res.values)
        if res.details:
            details[name] = res.details
    return {"values": values, "details": details}


def evaluate(predictor: Predictor, examples: Sequence[Example], task: TaskInfo, metrics: Mapping[str, Metric],
             *, mode: str, max_new_tokens: int, run_dir: Path, prefix: str = "", registry: Any = None,
             baseline: Sequence[Prediction] | None = None,
             progress: Callable[[str, int], Any] | None = None, response_format: dict[str, Any] | None = None,
             json_whitespace: str = "compact", extractive: Sequence[str] = ()) -> tuple[dict[str, Any], list[Prediction]]:
    """Predict ``examples`` in ``mode`` (``both``: generate, then score), score, write predictions.

    ``progress(description, total)`` is a context manager yielding ``advance(n)`` (a progress bar).
    Returns the headline mode's scores (the other mode's under its name) and its predictions.
    """
    from contextlib import nullcontext

    modes = ["generate", "score"] if mode == "both" else [mode]
    bar = progress or (lambda description, total: nullcontext(None))
    out: dict[str, Any] = {}
    headline: list[Prediction] = []
    for m in modes:
        label = f"{prefix or 'tuned '}{m}".replace("_", " ")
        with bar(label, len(examples)) as advance:
            t0 = time.perf_counter()
            preds = predict(predictor, examples, task, mode=m, max_new_tokens=max_new_tokens, progress=advance,
                            response_format=response_format, json_whitespace=json_whitespace, extractive=extractive)
            seconds = time.perf_counter() - t0
        if any("reference_loglik" in metric.needs for metric in metrics.values()):
            with bar(f"{label} (reference log-likelihood)", sum(1 for p in preds if p.gold)) as advance:
                attach_reference_loglik(predictor, preds, progress=advance)
        ctx = MetricContext(run_dir=run_dir, prefix=prefix + ("" if m == modes[0] else f"{m}_"),
                            baseline=baseline, registry=registry)
        scored = score_predictions(preds, metrics, task, ctx)
        scored["mode"], scored["seconds"] = m, round(seconds, 2)
        if m == "generate":
            scored["response_format"] = (response_format or {"type": "text"})["type"]
            if extractive and response_format is not None:
                scored["extractive"] = list(extractive)
        suffix = "" if m == modes[0] else f"_{m}"
        write_jsonl(run_dir / f"{prefix}predictions{suffix}.jsonl", [p.to_record() for p in preds])
        if m == modes[0]:
            out.update(scored)
            headline = preds
        else:
            out[m] = scored
    return out, headline
