"""Structured-output metrics: exact match after JSON normalisation, field-level F1, JSON validity and
JSON-schema conformance.

Normalisation: an answer that parses as JSON is compared as ``json.dumps(value, sort_keys=True)`` with
no whitespace, so key order and spacing do not matter (``1`` and ``1.0`` stay different, as do ``"1"``
and ``1``). An answer (or gold) that is not JSON falls back to comparing stripped strings; how often
that happened is reported as ``string_fallback``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftframe.api import Metric, MetricResult, Prediction, TaskInfo
from ftframe.errors import ConfigError

_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)
_NOT_JSON = object()


@dataclass
class JsonOptions:
    strip_code_fences: bool = False
    """Read the answer inside a Markdown code fence (```json ... ```) as its content; off by default, so
    a model that wraps its JSON is not credited silently."""


def parse_json(text: str | None, *, strip_code_fences: bool = False) -> Any:
    """The JSON value of ``text``, or ``_NOT_JSON`` when it does not parse."""
    if text is None:
        return _NOT_JSON
    text = text.strip()
    if strip_code_fences:
        m = _FENCE.match(text)
        text = m.group(1).strip() if m else text
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return _NOT_JSON


def canonical(value: Any) -> str:
    """Key order and whitespace removed; ``ensure_ascii=False`` so umlauts compare as themselves."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def flatten(value: Any, path: str = "$") -> list[tuple[str, str]]:
    """``(key path, canonical leaf value)`` pairs; list items share the path ``name[]`` (order-free).

    Empty objects and lists are leaves themselves, so ``{}`` against ``{}`` is one matching pair.
    """
    if isinstance(value, dict) and value:
        return [pair for k in sorted(value) for pair in flatten(value[k], f"{path}.{k}")]
    if isinstance(value, list) and value:
        return [pair for item in value for pair in flatten(item, f"{path}[]")]
    return [(path, canonical(value))]


class ExactMatch(Metric):
    """Share of answers equal to the gold answer after JSON normalisation (else stripped-string equality)."""

    name = "exact_match"
    Config = JsonOptions

    def compute(self, predictions: Sequence[Prediction], task: TaskInfo) -> MetricResult:
        hits, fallback, misses = 0, 0, []
        for p in predictions:
            gold = parse_json(p.gold, strip_code_fences=False)
            pred = parse_json(p.predicted, strip_code_fences=self.config.strip_code_fences)
            if gold is _NOT_JSON or pred is _NOT_JSON:
                fallback += 1
                same = (p.gold or "").strip() == p.predicted.strip()
            else:
                same = canonical(gold) == canonical(pred)
            hits += same
            if not same and len(misses) < 20:
                misses.append({"source": p.source, "predicted": p.predicted, "gold": p.gold})
        n = len(predictions)
        return MetricResult({"exact_match": hits / n if n else 0.0},
                            {"n": n, "matches": hits, "string_fallback": fallback, "mismatch_examples": misses})


class FieldF1(Metric):
    """Micro F1 over ``(key path, value)`` pairs of gold and predicted JSON, with per-field scores.

    A non-JSON answer contributes no pairs (every gold pair is missed); a non-JSON gold is one pair
    ``($, text)``.
    """

    name = "field_f1"
    Config = JsonOptions

    def compute(self, predictions: Sequence[Prediction], task: TaskInfo) -> MetricResult:
        tp: Counter[str] = Counter()
        fp: Counter[str] = Counter()
        fn: Counter[str] = Counter()
        for p in predictions:
            gold_value = parse_json(p.gold)
            gold = Counter(flatten(gold_value) if gold_value is not _NOT_JSON else [("$", (p.gold or "").strip())])
            pred_value = parse_json(p.predicted, strip_code_fences=self.config.strip_code_fences)
            pred = Counter(flatten(pred_value)) if pred_value is not _NOT_JSON else Counter()
            for (path, _), c in (gold & pred).items():
                tp[path] += c
            for (path, _), c in (pred - gold).items():
                fp[path] += c
            for (path, _), c in (gold - pred).items():
                fn[path] += c
        total_tp, total_fp, total_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
        precision, recall, f1 = _prf(total_tp, total_fp, total_fn)
        per_field = {}
        for path in sorted(set(tp) | set(fp) | set(fn)):
            fp_, fr_, ff_ = _prf(tp[path], fp[path], fn[path])
            per_field[path] = {"precision": round(fp_, 4), "recall": round(fr_, 4), "f1": round(ff_, 4),
                               "support": tp[path] + fn[path]}
        return MetricResult({"field_f1": f1, "field_precision": precision, "field_recall": recall},
                            {"n": len(predictions), "tp": total_tp, "fp": total_fp, "fn": total_fn,
                             "per_field": per_field})


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1; with nothing expected and nothing predicted all three are 1 (a perfect
    empty answer), with nothing right 0."""
    if tp + fp + fn == 0:
        return 1.0, 1.0, 1.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn)
    return precision, recall, f1


class JsonValid(Metric):
    """Share of answers that parse as JSON (``json_valid``), and which did not."""

    name = "json_valid"
    Config = JsonOptions

    def compute(self, predictions: Sequence[Prediction], task: TaskInfo) -> MetricResult:
        bad = [p for p in predictions
               if parse_json(p.predicted, strip_code_fences=self.config.strip_code_fences) is _NOT_JSON]
        n = len(predictions)
        return MetricResult({"json_valid": (n - len(bad)) / n if n else 0.0},
                            {"n": n, "invalid": len(bad),
                             "invalid_examples": [{"source": p.source, "predicted": p.predicted} for p in bad[:20]]})


@dataclass
class JsonSchemaConfig(JsonOptions):
    schema: Any = None
    """The JSON schema, inline (a mapping in YAML); exclusive with ``schema_path``. Neither: the task's
    ``task.output_schema``."""
    schema_path: str | None = None
    """A JSON file holding the schema."""


class JsonSchema(Metric):
    """Share of answers that are JSON and conform to the JSON schema (``jsonschema``): the metric's own
    ``schema``/``schema_path``, else the task's ``task.output_schema``."""

    name = "json_schema"
    Config = JsonSchemaConfig

    def __init__(self, config: Any = None):
        super().__init__(config)
        c = self.config
        if c.schema is not None and c.schema_path is not None:
            raise ConfigError("metrics.json_schema: give the schema inline (metrics.json_schema.schema) or as a "
                              "file (metrics.json_schema.schema_path), not both.")
        self.validator = None
        if c.schema_path is not None:
            path = Path(c.schema_path)
            try:
                schema = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise ConfigError(f"metrics.json_schema.schema_path: file not found: {path}.") from None
            except OSError as exc:
                raise ConfigError(f"metrics.json_schema.schema_path: cannot read {path}: {exc.strerror}.") from None
            except json.JSONDecodeError as exc:
                raise ConfigError(f"metrics.json_schema.schema_path: {path}:{exc.lineno}: not valid JSON "
                                  f"({exc.msg}).") from None
            self.validator = _validator(schema, "metrics.json_schema.schema_path")
        elif c.schema is not None:
            self.validator = _validator(c.schema, "metrics.json_schema.schema")

    def compute(self, predictions: Sequence[Prediction], task: TaskInfo) -> MetricResult:
        validator = self.validator
        if validator is None:
            if task.output_schema is None:
                raise ConfigError("metrics.json_schema: no schema to check answers against: set task.output_schema "
                                  "(or metrics.json_schema.schema / schema_path).")
            validator = _validator(task.output_schema, "task.output_schema")
        ok, failures = 0, []
        for p in predictions:
            value = parse_json(p.predicted, strip_code_fences=self.config.strip_code_fences)
            if value is _NOT_JSON:
                errors = ["not JSON"]
            else:
                errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(value)]
            if errors:
                if len(failures) < 20:
                    failures.append({"source": p.source, "predicted": p.predicted, "errors": errors[:5]})
            else:
                ok += 1
        n = len(predictions)
        return MetricResult({"json_schema": ok / n if n else 0.0},
                            {"n": n, "conforming": ok, "failure_examples": failures})


def _validator(schema: Any, where: str) -> Any:
    """A ``jsonschema`` validator for ``schema``; a :class:`ConfigError` naming ``where`` when it is not a
    valid JSON schema."""
    from jsonschema import validators

    from ftframe.engine import check_schema

    check_schema(schema, where)
    return validators.validator_for(dict(schema))(dict(schema))
