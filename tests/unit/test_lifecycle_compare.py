"""``ftframe compare``: run dirs built from predictions the tests control, so the statistics are known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftframe.commands import main
from ftframe.testing import write_run_dir

LABELS = ["billing", "shipping", "technical"]
N = 60
FAST = ["--resamples", "200"]


def gold(i: int) -> str:
    return LABELS[i % 3]


def wrong(i: int) -> str:
    return LABELS[(i + 1) % 3]


def rows(correct: set[int]) -> list[tuple[str, str, str]]:
    return [(f"ticket {i} about {gold(i)}", gold(i), gold(i) if i in correct else wrong(i)) for i in range(N)]


def comparison(out: Path) -> dict:
    return json.loads((out / "comparison.json").read_text(encoding="utf-8"))


def delta(out: Path, name: str) -> dict:
    return next(d for d in comparison(out)["deltas"] if d["name"] == name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A right on half the examples, B on 54 of 60 (every example A gets right, and 24 more)."""
    tmp = tmp_path_factory.mktemp("runs")
    a = write_run_dir(tmp / "A", rows(set(range(0, N, 2))), gate={"macro_f1": 0.3})
    b = write_run_dir(tmp / "B", rows(set(range(0, N, 2)) | set(range(1, 49, 2))), gate={"macro_f1": 0.3})
    return a, b


def test_known_difference_ci_excludes_zero(runs, tmp_path, capsys):
    a, b = runs
    out = tmp_path / "out"
    assert main(["compare", str(a), str(b), "--out", str(out), *FAST]) == 0
    d = delta(out, "macro_f1")
    assert d["ci_low"] > 0 and d["verdict"] == "B better" and d["p_value"] < 0.01
    acc = delta(out, "accuracy")
    assert acc["a"] == pytest.approx(0.5) and acc["b"] == pytest.approx(0.9)
    assert comparison(out)["accepted"] is True
    flips = [json.loads(x) for x in (out / "flips.jsonl").read_text().splitlines()]
    assert len(flips) == 24 and {f["change"] for f in flips} == {"improved"}
    per_class = [x for x in comparison(out)["deltas"] if x["name"].startswith("per_class[")]
    assert sorted(x["name"] for x in per_class) == [f"per_class[{lab}].f1" for lab in LABELS]
    for name in ("comparison.md", "comparison.html", "comparison.png"):
        assert (out / name).stat().st_size > 0
    md = (out / "comparison.md").read_text()
    assert "| macro_f1 | 0.5000 | 0.9000 | +0.4000 |" in md and "B may replace A" in md
    assert "B may replace A" in capsys.readouterr().out


def test_reversed_known_difference_refuses_b(runs, tmp_path, capsys):
    a, b = runs
    out = tmp_path / "out"
    assert main(["compare", str(b), str(a), "--out", str(out), *FAST]) == 1
    assert delta(out, "macro_f1")["verdict"] == "B worse" and delta(out, "macro_f1")["ci_high"] < 0
    printed = capsys.readouterr().out
    assert "B must not replace A" in printed and "significantly worse on macro_f1" in printed


def test_no_difference_ci_includes_zero(tmp_path):
    """B swaps five right answers of A for five others: the same accuracy, the interval straddles zero."""
    a_right = set(range(40))
    b_right = (a_right - {0, 3, 6, 9, 12}) | {40, 43, 46, 49, 52}
    a = write_run_dir(tmp_path / "A", rows(a_right), metrics=("accuracy",))
    b = write_run_dir(tmp_path / "B", rows(b_right), metrics=("accuracy",))
    out = tmp_path / "out"
    assert main(["compare", str(a), str(b), "--out", str(out), *FAST]) == 0
    d = delta(out, "accuracy")
    assert d["delta"] == pytest.approx(0.0) and d["ci_low"] < 0 < d["ci_high"] and d["verdict"] == "no difference"
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "o2"), "--require-improvement", *FAST]) == 1


def test_identical_predictions_give_a_zero_interval(tmp_path):
    a = write_run_dir(tmp_path / "A", rows(set(range(30))), metrics=("accuracy",))
    b = write_run_dir(tmp_path / "B", rows(set(range(30))), metrics=("accuracy",))
    out = tmp_path / "out"
    assert main(["compare", str(a), str(b), "--out", str(out), *FAST]) == 0
    d = delta(out, "accuracy")
    assert (d["ci_low"], d["ci_high"], d["p_value"]) == (0.0, 0.0, 1.0)
    assert comparison(out)["flips"] == 0 and comparison(out)["agreement"] == 1.0


def test_gate_on_a_class_refuses_a_better_b_that_loses_one_class(tmp_path, capsys):
    """B is better overall but worse on 'technical' (i % 3 == 2): --max-loss per_class=0.01 refuses it."""
    a_right = {i for i in range(N) if i % 3 == 2} | {0, 1, 3, 4}
    b_right = {i for i in range(N) if i % 3 != 2} | {2, 5}
    a = write_run_dir(tmp_path / "A", rows(a_right))
    b = write_run_dir(tmp_path / "B", rows(b_right))
    out = tmp_path / "out"
    assert main(["compare", str(a), str(b), "--out", str(out), *FAST]) == 0  # no class gate: B may replace A
    assert main(["compare", str(a), str(b), "--out", str(out), "--max-loss", "per_class=0.01", *FAST]) == 1
    failed = [c for c in comparison(out)["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["max loss per_class[technical].f1"]
    assert "per_class[technical].f1" in capsys.readouterr().out


def test_task_gate_and_require_apply_to_b(runs, tmp_path):
    a, b = runs
    out = tmp_path / "out"
    assert main(["compare", str(a), str(b), "--out", str(out), "--require", "accuracy>=0.95", *FAST]) == 1
    assert [c["name"] for c in comparison(out)["checks"] if not c["passed"]] == ["require accuracy>=0.95"]
    strict_a = write_run_dir(tmp_path / "A2", rows(set(range(0, N, 2))), gate={"macro_f1": 0.95})
    assert main(["compare", str(strict_a), str(b), "--out", str(out), *FAST]) == 1
    assert comparison(out)["task_gate"]["passed"] is False


def test_data_file_matching_the_saved_predictions_needs_no_evaluation(runs, tmp_path):
    a, b = runs
    out = tmp_path / "out"
    assert main(["compare", str(a), str(b), "--data", str(a / "data" / "test.jsonl"), "--out", str(out), *FAST]) == 0
    assert comparison(out)["a"]["predictions"] == "saved predictions.jsonl"
    assert not (out / "eval_A").exists() and not (out / "eval_B").exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"labels": ["billing", "shipping", "technical", "refund"]}, "label sets differ (only in A: none; only in B: ['refund'])"),
    ({"task": "other"}, "A is task 'tiny', B task 'other'"),
])
def test_different_tasks_or_label_sets_are_refused(runs, tmp_path, capsys, change, message):
    a, _ = runs
    b = write_run_dir(tmp_path / "B2", rows(set(range(N))), **change)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "out"), *FAST]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "comparison.json").exists()


def test_other_test_split_without_data_is_refused(runs, tmp_path, capsys):
    a, _ = runs
    other = [(f"another ticket {i}", gold(i), gold(i)) for i in range(N)]
    b = write_run_dir(tmp_path / "B2", other)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "out"), *FAST]) == 2
    assert "different examples" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--data", "missing.jsonl"], "--data missing.jsonl: no such file"),
    (["--max-loss", "macro_f1"], "expected QUANTITY=MARGIN"),
    (["--max-loss", "bleu=0.1"], "--max-loss bleu: no such quantity"),
    (["--max-loss", "invalid_rate=0.1"], "which direction is better is unknown"),
    (["--require", "accuracy>0.5"], "expected NAME>=VALUE"),
    (["--resamples", "10"], "at least 100"),
])
def test_bad_options_are_clear_errors(runs, tmp_path, capsys, args, message):
    a, b = runs
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "out"), *FAST, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_side_names_the_accepted_forms(runs, tmp_path, capsys):
    a, _ = runs
    assert main(["compare", str(a), str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "no such run dir" in err and "models:/NAME@alias" in err and "openai" in err
    assert main(["compare", str(a)]) == 2
    assert "needs two sides" in capsys.readouterr().err
