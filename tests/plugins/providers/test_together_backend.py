"""The ``together`` backend end to end against a loopback server built from Together AI's API reference:
the same backend contract as ``openai`` over a differently shaped API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TOGETHER_KEY
from test_openai_backend import assert_key_nowhere

from ftframe.errors import FtframeError
from ftframe.testing import run_tiny


def overrides(server, data: Path, **extra) -> list[str]:
    base = {"backend": "together", "backend.base_url": f"{server.url}/v1", "backend.poll_seconds": 0,
            "backend.retry_base_seconds": 0.01, "backend.suffix": "tickets", "data.path": data,
            "task.name": "tiny", "eval.mode": "generate", "eval.max_new_tokens": 8, "exporters": "[model_card]",
            "split.train": 0.5, "split.val": 0.25, "split.test": 0.25}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def test_lora_job_end_to_end(together_server, chat_data, tmp_path, capsys):
    run_dir = tmp_path / "run"
    result = run_tiny(run_dir, overrides(together_server, chat_data, **{"backend.n_epochs": 3}))
    assert result.ok, result.error
    assert together_server.violations == [] and together_server.line_errors == []
    (create,) = [r.json for r in together_server.calls("POST", "/v1/fine-tunes")]
    assert create["training_type"] == {"type": "Lora", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
                                       "lora_trainable_modules": "all-linear"}
    assert create["training_method"] == {"method": "sft", "train_on_inputs": "auto"}
    assert create["n_epochs"] == 3 and create["learning_rate"] == 1e-5 and create["n_evals"] == 1
    assert create["validation_file"] and create["batch_size"] == "max"
    (job,) = together_server.jobs.values()
    assert result.metrics["trained_model"] == {"kind": "remote", "remote_id": job["model_output_name"]}
    assert json.loads((run_dir / "provider_job.json").read_text())["job_id"] == job["id"]
    assert result.metrics["train"]["cost_estimate"]["epochs"] == 3
    assert result.metrics["train"]["trained_tokens"] == 4321 and result.metrics["train"]["steps"] == 3
    assert result.baseline_metrics["values"]["accuracy"] == 0.0 and result.metrics["values"]["accuracy"] == 1.0
    assert_key_nowhere(run_dir, "".join(capsys.readouterr()), TOGETHER_KEY)


def test_bad_key(together_server, chat_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TOGETHER_API_KEY", "tgp_v1_wrong-key-0000000000")
    with pytest.raises(FtframeError, match=r"rejected the API key from \$TOGETHER_API_KEY.*401: Invalid API key"):
        run_tiny(tmp_path / "run", overrides(together_server, chat_data, **{"backend.concurrency": 1}))
    assert_key_nowhere(tmp_path / "run", "".join(capsys.readouterr()), "tgp_v1_wrong-key-0000000000")


def test_failed_job(together_server, chat_data, tmp_path):
    together_server.fail_jobs = True
    with pytest.raises(FtframeError, match="ended without a model: Training failed: CUDA out of memory"):
        run_tiny(tmp_path / "run", overrides(together_server, chat_data, **{"eval.baseline": "false"}))


def test_retries_and_no_second_job_after_a_lost_create_reply(together_server, chat_data, tmp_path):
    together_server.inject("POST /files/upload", [429, 503])
    together_server.inject("POST /fine-tunes", [502], after_effect=True)
    together_server.inject("GET /fine-tunes/{id}", [500])
    together_server.inject("POST /chat/completions", [429])
    result = run_tiny(tmp_path / "run", overrides(together_server, chat_data))
    assert result.ok, result.error
    assert len(together_server.jobs) == 1 and len(together_server.calls("POST", "/v1/fine-tunes")) == 1


def test_resume_by_job_id_and_dpo_body(together_server, tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"{word} {i}"}],
             "chosen": {"role": "assistant", "content": good}, "rejected": {"role": "assistant", "content": bad}}
            for i in range(6) for word, good, bad in (("invoice refund", "billing", "technical"),
                                                      ("app crash", "technical", "billing"))]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    first = run_tiny(tmp_path / "a", overrides(together_server, data, **{
        "backend.method": "dpo", "backend.beta": 0.3, "backend.lora": "false", "eval.baseline": "false"}))
    assert first.ok, first.error
    assert together_server.violations == [] and together_server.line_errors == []
    (create,) = [r.json for r in together_server.calls("POST", "/v1/fine-tunes")]
    assert create["training_method"] == {"method": "dpo", "dpo_beta": 0.3} and create["training_type"] == {"type": "Full"}
    (job_id,) = together_server.jobs
    again = run_tiny(tmp_path / "b", overrides(together_server, data, **{
        "backend.method": "dpo", "backend.job_id": job_id, "eval.baseline": "false"}))
    assert again.ok and len(together_server.jobs) == 1 and len(together_server.calls("POST", "/v1/files/upload")) == 2
