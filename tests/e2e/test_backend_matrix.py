"""A matrix over training methods on a shipped task: ``python -m ftframe -m +task=triage
backend=lora,qlora,full`` through the real CLI (in this process), on the tiny model with small settings.
Every cell trains with the task's portable hyperparameters and its own backend's options, exports what its
backend produces, and the report's cells are the backends."""

from __future__ import annotations

import csv
import json

import pytest
from test_matrices import multirun  # the in-process ``python -m ftframe -m`` of the matrix tests

SMALL = ["eval.baseline=false", "eval.limit=24", "eval.batch_size=24", "trainer.enable_progress_bar=false",
         "threads=1", "data_checks.preflight=false"]


@pytest.mark.slow
def test_a_matrix_over_backends_runs_every_backend_of_a_shipped_task(monkeypatch, tmp_path, tiny_model_dir):
    sweep = tmp_path / "sweep"
    assert multirun(monkeypatch, "+task=triage", "backend=lora,qlora,full", "model=hf_local",
                    f"model.path={tiny_model_dir}", *SMALL, f"hydra.sweep.dir={sweep}") == 0
    runs = {}
    for d in sorted(p for p in sweep.iterdir() if (p / "manifest.json").is_file()):
        manifest = json.loads((d / "manifest.json").read_text())
        runs[manifest["config"]["backend"]["name"]] = (d, manifest)
    assert set(runs) == {"lora", "qlora", "full"}
    for name, (run_dir, manifest) in runs.items():
        assert manifest["status"] in ("succeeded", "gate_failed"), (name, manifest.get("error"))
        backend, train = manifest["config"]["backend"], manifest["metrics"]["train"]
        assert backend["epochs"] == 1 and backend["batch_size"] == 8 and train["backend"] == name
        assert backend["lr"] == (1e-4 if name == "full" else 2e-3)  # full: conf/task_backend/triage/full.yaml
        assert backend.get("last_layers") == (None if name == "full" else 12)
        assert manifest["config"]["eval"]["mode"] == "score"
        if manifest["status"] == "succeeded":
            assert (run_dir / ("merged" if name == "full" else "adapter")).is_dir()
    with (sweep / "results_cells.csv").open() as f:
        cells = list(csv.DictReader(f))
    assert sorted(c["backend"] for c in cells) == ["full", "lora", "qlora"]
    assert all(c["runs"] == "1" and c["failed"] == "0" and c["macro_f1_mean"] for c in cells)
    md = (sweep / "results.md").read_text()
    assert "3 runs, 3 cells, 0 not finished" in md and "backend" in md
