"""A plugin registered the way a third party would, used through config alone (the docs' example)."""

from __future__ import annotations

import types
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from ftframe import hookimpl, testing
from ftframe.api import Metric, MetricResult, Prediction, TaskInfo
from ftframe.errors import ConfigError


@dataclass
class WordBudgetConfig:
    max_words: int = 50


class WordBudget(Metric):
    name = "word_budget"
    Config = WordBudgetConfig

    def compute(self, predictions: Sequence[Prediction], task: TaskInfo) -> MetricResult:
        ok = sum(len(p.predicted.split()) <= self.config.max_words for p in predictions)
        return MetricResult({"word_budget": ok / max(len(predictions), 1)})


def make_plugin() -> types.ModuleType:
    mod = types.ModuleType("ftframe_wordcount_test")

    @hookimpl
    def ftframe_metrics():
        return [WordBudget]

    mod.ftframe_metrics = ftframe_metrics
    return mod


def test_options_compose_and_validate():
    plugin = make_plugin()
    cfg = testing.compose(["data.path=x", "metrics=[macro_f1,word_budget]", "metrics.word_budget.max_words=3"],
                          plugins=[plugin])
    assert cfg.metrics.word_budget.max_words == 3
    with pytest.raises(ConfigError, match="metrics.word_budget.max_wrds"):
        testing.compose(["data.path=x", "metrics=[macro_f1,word_budget]", "metrics.word_budget.max_wrds=3"],
                        plugins=[plugin])


def test_tiny_run_uses_the_plugin(tmp_path, tiny_model_dir):
    data = testing.write_chat_jsonl(tmp_path / "d.jsonl", testing.toy_classification_rows(8), system="Classify.")
    overrides = testing.tiny_run_overrides(tiny_model_dir, data, **{"backend.epochs": 1, "eval.baseline": False})
    result = testing.run_tiny(tmp_path / "run", [*overrides, "metrics=[macro_f1,word_budget]",
                                                 "metrics.word_budget.max_words=0"], plugins=[make_plugin()])
    assert result.status == "succeeded"
    # max_words=0: only empty answers fit the budget, so the value is the share of empty answers.
    empty = sum(1 for line in (result.run_dir / "predictions.jsonl").read_text().splitlines()
                if '"predicted": ""' in line)
    lines = len((result.run_dir / "predictions.jsonl").read_text().splitlines())
    assert result.metrics["values"]["word_budget"] == pytest.approx(empty / lines)
