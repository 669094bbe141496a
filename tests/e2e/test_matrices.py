"""Multiruns through the real CLI (``python -m ftframe -m``) on the tiny model: the report callback, a
failing cell that does not stop the sweep, resuming a sweep, Optuna, and the joblib and submitit launchers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from ftframe.testing import toy_classification_rows, write_chat_jsonl

TINY = {"task.name": "tiny", "backend.epochs": 1, "backend.batch_size": 4, "backend.r": 4, "backend.alpha": 8,
        "eval.baseline": "false", "eval.max_new_tokens": 4, "trainer.enable_progress_bar": "false", "threads": 1,
        "split.train": 0.5, "split.val": 0.25, "split.test": 0.25}


def multirun(monkeypatch, *args: str) -> int:
    """``python -m ftframe -m ARGS`` in this process; returns the exit status."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from ftframe.cli import main

    monkeypatch.setattr(sys, "argv", ["ftframe", "-m", *args])
    try:
        main()
        return 0
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:  # leave no Hydra job state behind for later tests' manifests
        HydraConfig.instance().cfg = None  # type: ignore[assignment]
        GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def good_data(tmp_path_factory) -> Path:
    return write_chat_jsonl(tmp_path_factory.mktemp("data") / "good.jsonl", toy_classification_rows(6),
                            system="Classify.")


def tiny_args(model_dir: Path, **extra: object) -> list[str]:
    return [f"{k}={v}" for k, v in {"model": "hf_local", "model.path": model_dir, **TINY, **extra}.items()]


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def runs_by_data(sweep: Path) -> dict[str, Path]:
    out = {}
    for d in sorted(p for p in sweep.iterdir() if (p / "manifest.json").is_file()):
        out[Path(manifest(d)["config"]["data"]["path"]).name] = d
    return out


def test_failed_cell_is_recorded_and_a_rerun_resumes(monkeypatch, tmp_path, tiny_model_dir, good_data):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n' * 5)  # a bad row: the job fails once it has started
    sweep = tmp_path / "sweep"
    args = [*tiny_args(tiny_model_dir), f"data.path={good_data},{bad}", f"hydra.sweep.dir={sweep}"]

    assert multirun(monkeypatch, *args) == 1  # the sweep went on, and says a cell failed
    cells = runs_by_data(sweep)
    assert set(cells) == {"good.jsonl", "bad.jsonl"}
    good_first, failed = manifest(cells["good.jsonl"]), manifest(cells["bad.jsonl"])
    assert good_first["status"] == "succeeded"
    assert failed["status"] == "failed" and failed["error"].startswith("DataError: ") and "'messages'" in failed["error"]
    assert "Traceback" in failed["traceback"] and failed["hydra"]["overrides"][-1] == f"data.path={bad}"
    md = (sweep / "results.md").read_text()
    assert "2 runs, 2 cells, 1 not finished" in md and "missing or empty 'messages' list" in md
    assert (sweep / "results.csv").is_file() and (sweep / "results.html").is_file() and (sweep / "results.png").is_file()

    write_chat_jsonl(bad, toy_classification_rows(6), system="Classify.")  # fix the data, run the sweep again
    assert multirun(monkeypatch, *args) == 0
    again = runs_by_data(sweep)
    assert manifest(again["good.jsonl"]) == good_first  # finished: skipped, untouched
    assert manifest(again["bad.jsonl"])["status"] == "succeeded"
    assert "2 runs, 2 cells, 0 not finished" in (sweep / "results.md").read_text()


def test_a_config_change_reruns_a_finished_cell(monkeypatch, tmp_path, tiny_model_dir, good_data):
    sweep = tmp_path / "sweep"
    base = [*tiny_args(tiny_model_dir), f"data.path={good_data}", f"hydra.sweep.dir={sweep}"]
    assert multirun(monkeypatch, *base, "seed=0") == 0
    first = manifest(sweep / "0")
    # same overrides, different resolved config (as after a change of code defaults): not the same cell
    assert multirun(monkeypatch, *base, "seed=0", "eval.batch_size=8") == 0
    second = manifest(sweep / "0")
    assert second["started"] >= first["started"] and second["config"]["eval"]["batch_size"] == 8
    # the old attempt is kept apart (training must not resume from its checkpoints) and is no cell
    assert manifest(sweep / "0" / "superseded" / "0") == first
    assert not (sweep / "0" / "checkpoints" / "best-v1.ckpt").exists()
    assert "1 runs, 1 cells, 0 not finished" in (sweep / "results.md").read_text()


def test_optuna_sweep_optimises_the_task_metric(monkeypatch, tmp_path, tiny_model_dir, good_data):
    sweep = tmp_path / "sweep"
    assert multirun(monkeypatch, *tiny_args(tiny_model_dir), f"data.path={good_data}", "+sweep=lr_search",
                    "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}") == 0
    trials = [manifest(sweep / str(i)) for i in range(2)]
    assert all(t["status"] == "succeeded" for t in trials)
    lrs = {t["config"]["backend"]["lr"] for t in trials}
    assert len(lrs) == 2 and all(1e-4 <= lr <= 1e-2 for lr in lrs)  # the search space, not the task's lr
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(t["metrics"]["values"]["macro_f1"] for t in trials)
    assert "backend.lr" in (sweep / "results.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["parallel", "submitit_local"])
def test_launcher_runs_cells_in_other_processes(monkeypatch, tmp_path, tiny_model_dir, good_data, launcher):
    sweep = tmp_path / "sweep"
    assert multirun(monkeypatch, *tiny_args(tiny_model_dir), f"data.path={good_data}", "seed=0,1",
                    f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep}") == 0
    runs = [manifest(sweep / str(i)) for i in range(2)]
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"] and [r["seed"] for r in runs] == [0, 1]
    expected = {"parallel": "JoblibLauncher", "submitit_local": "LocalLauncher"}[launcher]
    assert all(r["hydra"]["launcher"].endswith(expected) for r in runs)
    assert "2 runs, 1 cells, 0 not finished" in (sweep / "results.md").read_text()
