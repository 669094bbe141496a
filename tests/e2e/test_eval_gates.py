"""Gates and golden sets on whole tiny runs, the exit code of ``python -m ftframe``, and ``ftframe eval``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftframe.commands import main as ftframe_main
from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_chat_jsonl(tmp_path_factory.mktemp("data") / "toy.jsonl", toy_classification_rows(8),
                            system="Classify.")


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> Path:
    rows = [(f"invoice {i} paid twice, refund please", "billing") for i in range(50, 55)]
    rows += [(f"app crash error {i} at start", "technical") for i in range(50, 55)]
    return write_chat_jsonl(tmp_path_factory.mktemp("golden") / "golden.jsonl", rows, system="Classify.")


def cli(run_dir: Path, overrides: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ftframe", *overrides, f"hydra.run.dir={run_dir}"],
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("threshold, code, status", [(1.01, 1, "gate_failed"), (0.0, 0, "succeeded")])
def test_python_m_ftframe_exit_code_follows_the_gate(tmp_path, tiny_model_dir, data, threshold, code, status):
    overrides = tiny_run_overrides(tiny_model_dir, data, **{"backend.epochs": 1, "eval.baseline": False,
                                                            "threads": 1})
    proc = cli(tmp_path / "run", [*overrides, f"+gate.accuracy={threshold}"])
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-2000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == status
    assert manifest["gate"]["checks"]["accuracy"]["min"] == threshold
    assert (tmp_path / "run" / "adapter").is_dir() is (code == 0)  # a failed gate exports nothing
    assert status.upper() in proc.stdout


def test_golden_set_instead_of_a_test_split_drives_the_gate(tmp_path, tiny_model_dir, data, golden):
    overrides = tiny_run_overrides(tiny_model_dir, data, **{
        "backend.epochs": 1, "split.train": 0.75, "split.val": 0.25, "split.test": 0, "eval.golden": golden})
    result = run_tiny(tmp_path / "run", [*overrides, "+gate.macro_f1=1.01"])
    d = tmp_path / "run"
    assert result.status == "gate_failed"
    assert result.gate["on"] == "golden"
    golden_values = result.metrics["golden"]["values"]
    assert result.gate["checks"]["macro_f1"]["value"] == golden_values["macro_f1"]
    assert len(read_jsonl(d / "golden_predictions.jsonl")) == 10
    assert len(read_jsonl(d / "baseline_golden_predictions.jsonl")) == 10
    assert not (d / "predictions.jsonl").exists() and not (d / "adapter").exists()
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["data"]["golden"] == {"path": str(golden), "examples": 10}
    assert metrics["test"]["golden"]["values"] == golden_values
    for png in ("golden_confusion_matrix.png", "baseline_golden_confusion_matrix.png"):
        assert (d / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cm = metrics["test"]["golden"]["details"]["macro_f1"]["confusion_matrix"]
    assert cm["columns"][-1] == "(invalid)" and sum(map(sum, cm["counts"])) == 10


def test_golden_set_config_errors(tiny_model_dir, data, tmp_path):
    from ftframe.errors import ConfigError

    overrides = tiny_run_overrides(tiny_model_dir, data, **{"split.train": 0.75, "split.val": 0.25, "split.test": 0})
    with pytest.raises(ConfigError, match="split.test is 0 but there is no test file and no golden set"):
        run_tiny(tmp_path / "a", overrides)
    with pytest.raises(ConfigError, match=r"nope\.jsonl: file not found\. Check eval\.golden"):
        run_tiny(tmp_path / "b", [*overrides, f"eval.golden={tmp_path / 'nope.jsonl'}"])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model_dir, data):
    run_dir = tmp_path_factory.mktemp("saved") / "run"
    result = run_tiny(run_dir, tiny_run_overrides(tiny_model_dir, data, **{"backend.epochs": 1}))
    assert result.ok
    return run_dir, result


def test_eval_a_saved_run_reproduces_its_test_metrics(finished_run, tmp_path):
    run_dir, result = finished_run
    assert ftframe_main(["eval", str(run_dir), "--out", str(tmp_path / "e")]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["test"]["values"] == pytest.approx(result.metrics["values"])
    again = read_jsonl(tmp_path / "e" / "predictions.jsonl")
    before = read_jsonl(run_dir / "predictions.jsonl")
    assert [r["predicted"] for r in again] == [r["predicted"] for r in before]
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert manifest["status"] == "succeeded" and manifest["evaluated"]["weights"] == "adapter"
    # a gate given on the command line decides the exit code; nothing else is lost from the run's config
    assert ftframe_main(["eval", str(run_dir), "+gate.macro_f1=1.01", "--out", str(tmp_path / "g")]) == 1
    assert json.loads((tmp_path / "g" / "manifest.json").read_text())["status"] == "gate_failed"
    assert set(json.loads((tmp_path / "g" / "metrics.json").read_text())["test"]["values"]) >= {"macro_f1",
                                                                                                  "accuracy"}


def test_eval_a_saved_run_on_other_data(finished_run, golden, tmp_path):
    run_dir, _ = finished_run
    assert ftframe_main(["eval", str(run_dir), f"data={golden}", "metrics=[accuracy]",
                         "task.primary_metric=accuracy", "--out", str(tmp_path / "e")]) == 0
    cfg = (tmp_path / "e" / "config.yaml").read_text()
    assert "name: tiny" in cfg and str(golden) in cfg  # the run's task kept, the data replaced
    values = json.loads((tmp_path / "e" / "metrics.json").read_text())["test"]["values"]
    assert set(values) == {"accuracy"}
    assert len(read_jsonl(tmp_path / "e" / "predictions.jsonl")) == 10


def test_eval_a_base_model(tiny_model_dir, golden, tmp_path, capsys):
    out = tmp_path / "base"
    assert ftframe_main(["eval", str(tiny_model_dir), f"data={golden}", "metrics=[macro_f1,accuracy]",
                         "eval.mode=score", "--out", str(out), "--limit", "6"]) == 0
    rows = read_jsonl(out / "predictions.jsonl")
    assert len(rows) == 6 and all(r["predicted"] in ("billing", "technical") for r in rows)  # label scoring
    assert (out / "confusion_matrix.png").is_file()
    assert "(base)" in capsys.readouterr().out


def test_eval_bad_targets(tmp_path, capsys):
    assert ftframe_main(["eval", str(tmp_path)]) == 2
    assert "not a run dir" in capsys.readouterr().err
    assert ftframe_main(["eval", "smollm2"]) == 2
    assert "needs data" in capsys.readouterr().err
