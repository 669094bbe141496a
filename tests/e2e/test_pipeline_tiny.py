"""Whole runs on the tiny random model: artifacts, manifest, training curve, gate, re-entrancy."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl

TRAIN = {"backend.epochs": 10, "backend.lr": 0.03, "backend.r": 8, "backend.alpha": 16,
         "backend.early_stopping_patience": "null"}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def epoch_rows(run_dir: Path, column: str) -> list[tuple[int, float]]:
    with (run_dir / "logs" / "csv" / "metrics.csv").open() as f:
        return [(int(r["epoch"]), float(r[column])) for r in csv.DictReader(f) if r.get(column)]


@pytest.fixture(scope="module")
def data_path(tmp_path_factory) -> Path:
    return write_chat_jsonl(tmp_path_factory.mktemp("data") / "toy.jsonl", toy_classification_rows(24),
                            system="Classify.")


@pytest.fixture(scope="module")
def overrides(tiny_model_dir, data_path) -> list[str]:
    return tiny_run_overrides(tiny_model_dir, data_path, **TRAIN)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, overrides):
    torch.manual_seed(0)  # the outcome otherwise depends on the RNG state earlier tests left
    return run_tiny(tmp_path_factory.mktemp("pipeline") / "run", overrides)


def test_run_succeeds_and_writes_every_artifact(tiny_run):
    assert tiny_run.status == "succeeded" and tiny_run.ok and tiny_run.error is None
    d = tiny_run.run_dir
    for name in ("config.yaml", "metrics.json", "predictions.jsonl", "baseline_predictions.jsonl", "manifest.json",
                 "MODEL_CARD.md", "adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                 "logs/csv/metrics.csv", "data/train.jsonl", "data/val.jsonl", "data/test.jsonl"):
        assert (d / name).is_file(), name
    assert (d / "checkpoints").is_dir() and any((d / "checkpoints").glob("*.ckpt"))
    assert tiny_run.exports["adapter"]["verified"] is True
    assert not (d / "rejected.jsonl").exists()


def test_config_and_metrics_files(tiny_run, data_path):
    d = tiny_run.run_dir
    cfg = OmegaConf.load(d / "config.yaml")
    assert cfg.data.path == str(data_path) and cfg.backend.epochs == 10 and cfg.model.name == "hf_local"
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["data"]["splits"] == {"train": 24, "val": 12, "test": 12}
    assert metrics["data"]["labels"] == ["billing", "technical"]
    assert metrics["test"]["values"] == tiny_run.metrics["values"]
    assert set(metrics["test"]["values"]) >= {"macro_f1", "accuracy", "invalid_rate"}
    assert metrics["baseline"]["values"] == tiny_run.baseline_metrics["values"]
    assert metrics["train"]["epochs_run"] == 10


def test_predictions_files(tiny_run):
    for name in ("predictions.jsonl", "baseline_predictions.jsonl"):
        rows = read_jsonl(tiny_run.run_dir / name)
        assert len(rows) == 12
        for row in rows:
            assert {"input", "gold", "predicted"} <= set(row)
            assert row["gold"] in ("billing", "technical")
            assert row["input"][-1]["role"] == "user"  # the prompt excludes the gold reply
            assert isinstance(row["predicted"], str)
    tuned = read_jsonl(tiny_run.run_dir / "predictions.jsonl")
    accuracy = sum(r["predicted"] == r["gold"] for r in tuned) / len(tuned)
    assert accuracy == pytest.approx(tiny_run.metrics["values"]["accuracy"], abs=1e-6)


def test_manifest(tiny_run, data_path):
    m = json.loads((tiny_run.run_dir / "manifest.json").read_text())
    assert m["status"] == "succeeded" and m["finished"] and m["error"] is None
    sha = hashlib.sha256(data_path.read_bytes()).hexdigest()
    assert sha in m["inputs"].values()
    [(key, _)] = [(k, v) for k, v in m["inputs"].items() if v == sha]
    assert Path(key).resolve() == data_path.resolve()
    assert m["packages"]["torch"] == torch.__version__
    assert "git" in m and {"commit", "dirty"} <= set(m["git"])
    assert m["seed"] == 0
    assert m["config"]["seed"] == 0
    assert m["metrics"]["values"] == tiny_run.metrics["values"]


def test_model_card(tiny_run, data_path):
    card = (tiny_run.run_dir / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "macro_f1" in card
    assert hashlib.sha256(data_path.read_bytes()).hexdigest() in card
    assert "## Known failure cases" in card and "## Reproduce" in card


def test_training_loss_decreases(tiny_run):
    losses = sorted(epoch_rows(tiny_run.run_dir, "train/loss_epoch"))
    assert [e for e, _ in losses] == list(range(10))
    assert losses[-1][1] < losses[0][1]
    assert epoch_rows(tiny_run.run_dir, "train/loss_step")  # per-step values logged too


def test_best_checkpoint_breaks_metric_ties_by_val_loss(tiny_run):
    metric = epoch_rows(tiny_run.run_dir, "val/macro_f1")
    loss = dict(epoch_rows(tiny_run.run_dir, "val/loss"))
    best_value = max(v for _, v in metric)
    tied = [e for e, v in metric if v == best_value]
    expected = min(tied, key=loss.__getitem__)
    best = torch.load(tiny_run.metrics["train"]["best_checkpoint"], map_location="cpu", weights_only=False)
    assert best["epoch"] == expected, f"tied epochs {tied}, val losses {[loss[e] for e in tied]}"


def test_gate_failure_exports_nothing(tmp_path, tiny_model_dir):
    data = write_chat_jsonl(tmp_path / "toy.jsonl", toy_classification_rows(8), system="Classify.")
    overrides = tiny_run_overrides(tiny_model_dir, data, **{"backend.epochs": 1, "eval.baseline": False})
    result = run_tiny(tmp_path / "run", [*overrides, "+gate.macro_f1=1.01"])
    assert result.status == "gate_failed" and not result.ok
    assert result.gate["passed"] is False
    assert result.gate["checks"]["macro_f1"]["min"] == pytest.approx(1.01)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "gate_failed"
    assert manifest["gate"]["passed"] is False
    assert (tmp_path / "run" / "metrics.json").is_file()  # the evidence is kept
    assert not (tmp_path / "run" / "adapter").exists()
    assert not (tmp_path / "run" / "MODEL_CARD.md").exists()
    assert result.exports == {}
