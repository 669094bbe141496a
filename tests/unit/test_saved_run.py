"""load_saved_run: a finished tiny run loads back and reproduces its own test predictions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from ftframe.engine.saved_run import RunDirError, load_saved_run, read_run_dir
from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir) -> Path:
    tmp = tmp_path_factory.mktemp("saved")
    data = write_chat_jsonl(tmp / "toy.jsonl", toy_classification_rows(8), system="Classify.")
    torch.manual_seed(0)
    result = run_tiny(tmp / "run", tiny_run_overrides(tiny_model_dir, data, **{"eval.baseline": False}))
    assert result.ok
    return result.run_dir


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
