"""The ``openai`` backend end to end: the real backend and the real ``openai`` SDK against a loopback server
that validates every request against OpenAI's published OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import OPENAI_KEY

from ftframe.errors import ConfigError, FtframeError
from ftframe.testing import run_tiny


def overrides(server, data: Path, **extra) -> list[str]:
    base = {"backend": "openai", "backend.base_url": f"{server.url}/v1", "backend.poll_seconds": 0,
            "backend.retry_base_seconds": 0.01, "backend.suffix": "tickets", "data.path": data,
            "task.name": "tiny", "eval.mode": "generate", "eval.max_new_tokens": 8, "exporters": "[model_card]",
            "split.train": 0.5, "split.val": 0.25, "split.test": 0.25}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def assert_key_nowhere(run_dir: Path, captured: str, key: str = OPENAI_KEY) -> None:
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert key not in path.read_text(encoding="utf-8", errors="ignore"), path
    assert key not in captured


def test_supervised_job_end_to_end(openai_server, chat_data, tmp_path, capsys):
    run_dir = tmp_path / "run"
    result = run_tiny(run_dir, overrides(openai_server, chat_data))
    assert result.ok, result.error
    assert openai_server.violations == [] and openai_server.line_errors == []

    # one upload per split, one job, with the configured method, seed, suffix, validation file, metadata
    uploads = openai_server.calls("POST", "/v1/files")
    assert len(uploads) == 2 and {u.form["purpose"] for u in uploads} == {"fine-tune"}
    (create,) = [r.json for r in openai_server.calls("POST", "/v1/fine_tuning/jobs")]
    assert create["method"] == {"type": "supervised", "supervised": {"hyperparameters": {}}}
    assert create["seed"] == 0 and create["suffix"] == "tickets" and create["validation_file"]
    assert create["metadata"]["ftframe_task"] == "tiny" and create["metadata"]["ftframe_run"]

    state = json.loads((run_dir / "provider_job.json").read_text())
    job = openai_server.jobs[state["job_id"]]
    assert job["status"] == "succeeded" and state["fine_tuned_model"] == job["fine_tuned_model"]
    assert result.metrics["trained_model"] == {"kind": "remote", "remote_id": job["fine_tuned_model"]}
    assert len(result.metrics["train"]["checkpoints"]) == 3
    assert result.metrics["train"]["cost_estimate"]["epochs"] == 12  # OpenAI's auto rule for 8 examples

    # baseline through the base model, tuned evaluation through the tuned model id
    assert set(openai_server.chat_models) == {"gpt-4.1-mini-2025-04-14", job["fine_tuned_model"]}
    assert result.baseline_metrics["values"]["accuracy"] == 0.0
    assert result.metrics["values"]["accuracy"] == 1.0
    assert_key_nowhere(run_dir, "".join(capsys.readouterr()))
