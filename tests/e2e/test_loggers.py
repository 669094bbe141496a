"""Experiment trackers through Lightning loggers (``logger=...``): each writes its files below the run dir."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl


@pytest.fixture(scope="module")
def overrides(tmp_path_factory, tiny_model_dir) -> list[str]:
    data = write_chat_jsonl(tmp_path_factory.mktemp("data") / "toy.jsonl", toy_classification_rows(6),
                            system="Classify.")
    return tiny_run_overrides(tiny_model_dir, data, **{"backend.epochs": 2, "eval.baseline": "false",
                                                       "trainer.log_every_n_steps": 1})


def test_csv(tmp_path, overrides):
    run = run_tiny(tmp_path / "run", [*overrides, "logger=csv"])
    with (run.run_dir / "logs" / "csv" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("train/loss_step") for r in rows) and any(r.get("val/loss") for r in rows)


def test_tensorboard(tmp_path, overrides):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = run_tiny(tmp_path / "run", [*overrides, "logger=tensorboard"])
    [events] = (run.run_dir / "logs" / "tensorboard").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "train/loss_step" in tags and "val/loss" in tags
    assert len(acc.Scalars("val/loss")) == 2  # one per epoch


def test_mlflow_local_store(tmp_path, overrides, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = run_tiny(tmp_path / "run", [*overrides, "logger=mlflow"])
    store = run.run_dir / "mlflow" / "mlflow.db"
    assert store.is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("ftframe")
    [logged] = client.search_runs([experiment.experiment_id])
    assert logged.info.status == "FINISHED"
    assert "val/loss" in logged.data.metrics and "train/loss_step" in logged.data.metrics
    assert len(client.get_metric_history(logged.info.run_id, "val/loss")) == 2
    assert Path(experiment.artifact_location.removeprefix("file://")).is_relative_to(run.run_dir.resolve())


def test_no_logger_trains_and_writes_no_logs(tmp_path, overrides):
    run = run_tiny(tmp_path / "run", [*overrides, "~logger"])
    assert run.ok and run.metrics["train"]["steps"] > 0
    assert not (run.run_dir / "logs").exists()
