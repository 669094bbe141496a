"""Early stopping on the task metric, shown on a whole tiny run: it stops, says why, exports the best epoch.

The validation split contradicts the training split: the same two kinds of tickets with the labels swapped
(``split.files.val``). Whatever the model learns from training makes its validation accuracy worse, so the
task metric peaks early (while the model still answers almost at random) and falls to 0 once it has
learned; the run must stop ``patience`` epochs after its best epoch, well before the 6 it was asked for.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest
import torch
from safetensors.torch import load_file

from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl

PATIENCE, EPOCHS = 2, 6
SWAP = {"billing": "technical", "technical": "billing"}


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, tiny_model_dir):
    d = tmp_path_factory.mktemp("early_stopping")
    train = write_chat_jsonl(d / "train.jsonl", toy_classification_rows(16), system="Classify.")
    # the same two ticket templates (other numbers, so nothing leaks from training), labels swapped
    val = write_chat_jsonl(d / "val.jsonl", [(u, SWAP[g]) for u, g in toy_classification_rows(104)[-8:]],
                           system="Classify.")
    overrides = tiny_run_overrides(tiny_model_dir, train, **{
        "split.files.val": str(val), "split.train": 0.75, "split.val": 0, "split.test": 0.25,
        "backend.epochs": EPOCHS, "backend.early_stopping_patience": PATIENCE, "backend.lr": 0.03,
        "backend.r": 8, "backend.alpha": 16, "eval.mode": "score", "eval.baseline": False,
        "metrics": "[accuracy]", "task.primary_metric": "accuracy", "threads": 1})
    torch.manual_seed(0)
    printed = io.StringIO()
    with redirect_stdout(printed):
        result = run_tiny(d / "run", overrides)
    return result, " ".join(printed.getvalue().split())  # the console wraps long lines


def test_the_run_stops_when_the_task_metric_stops_improving(stopped_run):
    stopped_run, out = stopped_run
    assert stopped_run.status == "succeeded"
    train = stopped_run.metrics["train"]
    stop, history, best = train["early_stopping"], train["history"], train["best_epoch"]
    assert stop["stopped"] is True and stop["monitor"] == "val/accuracy" and stop["patience"] == PATIENCE
    assert train["epochs_asked"] == EPOCHS and train["epochs_run"] < EPOCHS
    assert train["epochs_run"] == stop["stopped_epoch"] + 1 == len(history)
    assert stop["stopped_epoch"] == best + PATIENCE  # patience epochs without improvement after the best
    # It was the task metric: every later epoch scored lower on it than the best one (not a tie decided by
    # the validation loss), and the recorded best score is that epoch's.
    assert [h["epoch"] for h in history] == list(range(len(history)))
    assert all(h["val/accuracy"] < history[best]["val/accuracy"] for h in history[best + 1:])
    assert train["best_score"] == history[best]["val/accuracy"]
    assert "val/accuracy" in stop["reason"] and f"after epoch {best}" in stop["reason"]
    # the manifest on disk says the same, and the summary printed at the end says it stopped early
    manifest = json.loads((stopped_run.run_dir / "manifest.json").read_text())
    assert manifest["metrics"]["train"]["early_stopping"] == stop
    assert manifest["metrics"]["train"]["epochs_run"] == train["epochs_run"]
    assert f"training: {train['epochs_run']} of {EPOCHS} epochs" in out
    assert f"stopped early after epoch {stop['stopped_epoch']}: {stop['reason']}" in out


def test_the_exported_adapter_holds_the_best_epochs_weights(stopped_run):
    stopped_run, _ = stopped_run
    train = stopped_run.metrics["train"]
    ckpts = stopped_run.run_dir / "checkpoints"
    best_ckpt = torch.load(ckpts / "best.ckpt", map_location="cpu", weights_only=True)
    last_ckpt = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)
    assert best_ckpt["epoch"] == train["best_epoch"] < last_ckpt["epoch"]

    def adapter_names(state):  # "model.base_model...q_proj.lora_A.default.weight" as PEFT saves it
        return {k.removeprefix("model.").replace(".default.", "."): v for k, v in state["state_dict"].items()}

    exported = load_file(stopped_run.run_dir / "adapter" / "adapter_model.safetensors")
    best, last = adapter_names(best_ckpt), adapter_names(last_ckpt)
    assert set(exported) == set(best) and exported
    assert all(torch.equal(exported[k], best[k]) for k in exported)
    assert not all(torch.equal(exported[k], last[k]) for k in exported)  # training went on after the best
