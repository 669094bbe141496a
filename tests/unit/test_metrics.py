"""Label metrics through the Registry: macro-F1 (with invalid answers kept apart) and accuracy."""

from __future__ import annotations

import pytest

from ftframe.api import Prediction, TaskInfo
from ftframe.errors import ConfigError


def preds(pairs):
    return [Prediction(i, [{"role": "user", "content": f"q{i}"}], gold, predicted, source=f"f:{i}")
            for i, (gold, predicted) in enumerate(pairs)]


@pytest.fixture
def f1(registry):
    return registry.create("metric", "macro_f1")


@pytest.fixture
def acc(registry):
    return registry.create("metric", "accuracy")


TASK3 = TaskInfo("t", "classification", ["A", "B", "C"])


def test_perfect_predictions(f1, acc):
    p = preds([("A", "A"), ("B", "B"), ("C", "C"), ("A", " A\n")])
    res = f1.compute(p, TASK3)
    assert res.values["macro_f1"] == pytest.approx(1.0)
    assert res.values["invalid_rate"] == 0.0
    assert acc.compute(p, TASK3).values == {"accuracy": pytest.approx(1.0)}


def test_macro_f1_matches_hand_computation(f1, acc):
    #  A: TP 2, FP 1 (C->A), FN 1 (A->B)  -> P 2/3 R 2/3 F1 2/3
    #  B: TP 1, FP 1 (A->B), FN 1 (B->C)  -> P 1/2 R 1/2 F1 1/2
    #  C: TP 2, FP 1 (B->C), FN 1 (C->A)  -> P 2/3 R 2/3 F1 2/3
    p = preds([("A", "A"), ("A", "A"), ("A", "B"), ("B", "B"), ("B", "C"), ("C", "C"), ("C", "A"), ("C", "C")])
    res = f1.compute(p, TASK3)
    assert res.values["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3, abs=1e-6)
    pc = res.details["per_class"]
    assert pc["B"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert pc["A"]["f1"] == pytest.approx(2 / 3, abs=1e-4) and pc["A"]["support"] == 3
    assert acc.compute(p, TASK3).values["accuracy"] == pytest.approx(5 / 8)


def test_unbalanced_precision_recall(f1):
    #  A: TP 1, FP 0, FN 2 -> P 1 R 1/3 F1 1/2 ;  B: TP 2, FP 2, FN 0 -> P 1/2 R 1 F1 2/3
    p = preds([("A", "A"), ("A", "B"), ("A", "B"), ("B", "B"), ("B", "B")])
    res = f1.compute(p, TaskInfo("t", "classification", ["A", "B"]))
    assert res.values["macro_f1"] == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-6)


def test_invalid_answers_are_counted_not_mapped(f1, acc):
    task = TaskInfo("t", "classification", ["A", "B"])
    #  "maybe" is outside the label set: wrong for gold A, and no false positive for any label.
    #  A: TP 1, FP 1 (B->A), FN 1 (->maybe) -> F1 1/2 ;  B: TP 1, FP 0, FN 1 -> P 1 R 1/2 F1 2/3
    p = preds([("A", "maybe"), ("A", "A"), ("B", "B"), ("B", "A")])
    res = f1.compute(p, task)
    assert res.details["invalid"] == 1
    assert res.values["invalid_rate"] == pytest.approx(0.25)
    assert res.details["invalid_examples"] == [{"source": "f:0", "predicted": "maybe", "gold": "A"}]
    assert res.values["macro_f1"] == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-6)
    assert res.details["per_class"]["B"]["precision"] == 1.0  # the invalid answer is not a B
    assert res.details["per_class"]["A"]["precision"] == 0.5
    assert set(res.details["per_class"]) == {"A", "B"}
    assert acc.compute(p, task).values["accuracy"] == pytest.approx(0.5)


def test_all_invalid_scores_zero(f1, acc):
    p = preds([("A", "zzz"), ("B", "")])
    res = f1.compute(p, TaskInfo("t", "classification", ["A", "B"]))
    assert res.values == {"macro_f1": 0.0, "invalid_rate": 1.0}
    assert acc.compute(p, TaskInfo("t", "classification", ["A", "B"])).values["accuracy"] == 0.0


def test_a_label_set_is_required(f1):
    with pytest.raises(ConfigError, match="label"):
        f1.compute(preds([("A", "A")]), TaskInfo("t", "classification", None))


def test_higher_is_better(f1, acc):
    assert f1.higher_is_better and acc.higher_is_better


def test_confusion_matrix_counts_and_png(f1, tmp_path):
    from ftframe.api import MetricContext

    task = TaskInfo("t", "classification", ["A", "B"])
    p = preds([("A", "A"), ("A", "B"), ("A", "maybe"), ("B", "B"), ("B", "A")])
    res = f1.compute(p, task, context=MetricContext(run_dir=tmp_path, prefix="baseline_"))
    cm = res.details["confusion_matrix"]
    assert cm == {"rows": ["A", "B"], "columns": ["A", "B", "(invalid)"], "counts": [[1, 1, 1], [1, 1, 0]]}
    png = tmp_path / "baseline_confusion_matrix.png"
    assert res.details["confusion_matrix_png"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "confusion_matrix_png" not in f1.compute(p, task).details  # no run dir (in-loop): no file


def test_empty_predictions(f1, acc):
    assert f1.compute([], TASK3).values == {"macro_f1": 0.0, "invalid_rate": 0.0}
    assert acc.compute([], TASK3).values == {"accuracy": 0.0}
