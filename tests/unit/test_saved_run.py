"""load_saved_run: a finished tiny run loads back and reproduces its own test predictions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ftframe.engine.saved_run import RunDirError, load_saved_run, read_run_dir


@pytest.fixture(scope="module")
def run_dir(finished_run_copy) -> Path:
    return finished_run_copy("saved")


def test_loads_the_adapter_and_reproduces_the_evaluated_predictions(run_dir):
    saved = load_saved_run(run_dir)
    assert saved.weights == "adapter" and saved.weights_path == run_dir / "adapter"
    assert saved.config.task.name == "tiny" and saved.manifest["status"] == "succeeded"
    test = saved.split("test")
    recorded = saved.predictions()
    assert len(test) == len(recorded) > 0
    answers = saved.predictor().generate([ex.prompt for ex in test], max_new_tokens=int(saved.config.eval.max_new_tokens))
    assert answers == [p.predicted for p in recorded]
    assert saved.metrics()["test"]["values"]


def test_missing_and_incomplete_run_dirs(tmp_path, run_dir):
    with pytest.raises(RunDirError, match="not a directory"):
        load_saved_run(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(RunDirError, match="manifest.json missing"):
        load_saved_run(tmp_path / "half")


@pytest.mark.parametrize(("status", "message"), [("running", "still running"), ("gate_failed", "failed its gate"),
                                                 ("failed", "it failed \\(boom\\)")])
def test_unfinished_runs_are_refused(tmp_path, run_dir, status, message):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints"))
    m = json.loads((copy / "manifest.json").read_text())
    m.update(status=status, error="boom")
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(RunDirError, match=message):
        read_run_dir(copy)


def test_run_without_weights_is_refused(tmp_path, run_dir):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints", "adapter"))
    with pytest.raises(RunDirError, match="no complete adapter or merged export"):
        load_saved_run(copy)
    with pytest.raises(RunDirError, match="prefer="):
        load_saved_run(run_dir, prefer="gguf")


def test_run_dir_from_before_a_new_config_key_still_loads(tmp_path, run_dir):
    """A key the schema gained later (eval.precision) takes its default; recorded values are kept."""
    copy = tmp_path / "old"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints"))
    from omegaconf import OmegaConf

    config = OmegaConf.load(copy / "config.yaml")
    del config.eval["precision"]
    OmegaConf.save(config, copy / "config.yaml")
    _, cfg, _ = read_run_dir(copy)
    assert cfg.eval.precision == "auto" and cfg.task.name == "tiny"
    assert cfg.eval.max_new_tokens == read_run_dir(run_dir)[1].eval.max_new_tokens
