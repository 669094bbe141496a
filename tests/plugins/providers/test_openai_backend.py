"""The ``openai`` backend end to end: the real backend and the real ``openai`` SDK against a loopback server
that validates every request against OpenAI's published OpenAPI document."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

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


def test_large_file_goes_through_the_uploads_api_in_parts(openai_server, chat_data, tmp_path):
    result = run_tiny(tmp_path / "run", overrides(openai_server, chat_data, **{
        "backend.upload_parts_above_mb": 0, "backend.upload_part_mb": 0.0005, "backend.validation": "false"}))
    assert result.ok, result.error
    assert openai_server.violations == [] and not openai_server.calls("POST", "/v1/files")
    uploads = [r.path.rsplit("/", 1)[-1] for r in openai_server.calls("POST", "/v1/uploads")]
    assert uploads[0] == "uploads" and uploads[-1] == "complete" and uploads.count("parts") > 1
    (create,) = [r.json for r in openai_server.calls("POST", "/v1/fine_tuning/jobs")]
    assert "validation_file" not in create


def test_dpo_job_writes_preference_lines(openai_server, tmp_path):
    rows = []
    for i in range(8):
        for text, good, bad in ((f"invoice {i} charged twice", "billing", "technical"),
                                (f"app crash error {i}", "technical", "billing")):
            rows.append({"messages": [{"role": "user", "content": text}],
                         "chosen": {"role": "assistant", "content": good},
                         "rejected": {"role": "assistant", "content": bad}})
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_tiny(tmp_path / "run", overrides(openai_server, data, **{
        "backend.method": "dpo", "backend.beta": 0.2, "backend.n_epochs": 2, "eval.baseline": "false"}))
    assert result.ok, result.error
    assert openai_server.violations == [] and openai_server.line_errors == []
    (create,) = [r.json for r in openai_server.calls("POST", "/v1/fine_tuning/jobs")]
    assert create["method"] == {"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 2, "beta": 0.2}}}
    line = json.loads(openai_server.contents[create["training_file"]].decode().splitlines()[0])
    assert set(line) == {"input", "preferred_output", "non_preferred_output"}
    assert result.metrics["values"]["accuracy"] == 1.0


def test_bad_key_stops_with_the_providers_message_but_not_the_key(openai_server, chat_data, tmp_path, capsys,
                                                                   monkeypatch):
    wrong = "sk-wrong-key-abcdefghijklmnop"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    with pytest.raises(FtframeError) as err:
        run_tiny(tmp_path / "run", overrides(openai_server, chat_data, **{"backend.concurrency": 1}))
    message = str(err.value)
    assert "401" in message and "Incorrect API key provided" in message and "$OPENAI_API_KEY" in message
    assert wrong not in message and "sk-wro" not in message
    asked = [json.dumps(r.json) for r in openai_server.calls("POST", "/v1/chat/completions")]
    assert len(asked) <= 2 and len(set(asked)) == len(asked)  # not retried; the queued requests dropped
    assert_key_nowhere(tmp_path / "run", "".join(capsys.readouterr()) + message, wrong)


def test_key_in_config_is_refused_and_never_echoed(openai_server, chat_data, tmp_path):
    with pytest.raises(ConfigError) as err:
        run_tiny(tmp_path / "run", overrides(openai_server, chat_data, **{"backend.api_key": OPENAI_KEY}))
    assert "Hydra writes" in str(err.value) and "OPENAI_API_KEY" in str(err.value)
    assert OPENAI_KEY not in str(err.value)
    assert not (tmp_path / "run" / "config.yaml").exists() and openai_server.requests == []


def test_key_from_a_file_named_by_the_environment(openai_server, chat_data, tmp_path, monkeypatch):
    secret = tmp_path / "key.txt"
    secret.write_text(OPENAI_KEY + "\n")
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_API_KEY_FILE", str(secret))
    assert run_tiny(tmp_path / "run", overrides(openai_server, chat_data, **{"eval.baseline": "false"})).ok
    monkeypatch.delenv("OPENAI_API_KEY_FILE")
    with pytest.raises(FtframeError, match="set the environment variable OPENAI_API_KEY"):
        run_tiny(tmp_path / "run2", overrides(openai_server, chat_data, **{"eval.baseline": "false"}))


def test_over_budget_is_refused_before_anything_is_uploaded(openai_server, chat_data, tmp_path, capsys):
    with pytest.raises(FtframeError, match=r"above backend.budget_usd=\$0.00.*Nothing was uploaded.*backend.yes"):
        run_tiny(tmp_path / "run", overrides(openai_server, chat_data, **{
            "backend.budget_usd": 0, "eval.baseline": "false"}))
    assert not openai_server.calls("POST", "/v1/files") and not openai_server.calls("POST", "/v1/fine_tuning")
    assert "training cost estimate" in capsys.readouterr().out
    result = run_tiny(tmp_path / "run2", overrides(openai_server, chat_data, **{
        "backend.budget_usd": 0, "backend.yes": "true", "eval.baseline": "false"}))
    assert result.ok


def test_unknown_price_needs_confirmation(openai_server, chat_data, tmp_path):
    with pytest.raises(FtframeError, match="no price for 'gpt-9-mini'"):
        run_tiny(tmp_path / "run", overrides(openai_server, chat_data, **{
            "backend.model": "gpt-9-mini", "eval.baseline": "false"}))


def test_job_id_resumes_watching_without_a_new_job(openai_server, chat_data, tmp_path):
    first = run_tiny(tmp_path / "first", overrides(openai_server, chat_data, **{"eval.baseline": "false"}))
    job_id = json.loads((tmp_path / "first" / "provider_job.json").read_text())["job_id"]
    n_files, n_jobs = len(openai_server.calls("POST", "/v1/files")), len(openai_server.jobs)
    again = run_tiny(tmp_path / "again", overrides(openai_server, chat_data, **{
        "backend.job_id": job_id, "eval.baseline": "false"}))
    assert again.ok and again.metrics["trained_model"] == first.metrics["trained_model"]
    assert len(openai_server.calls("POST", "/v1/files")) == n_files and len(openai_server.jobs) == n_jobs


def test_a_rerun_in_the_same_run_dir_reuses_the_recorded_job(openai_server, chat_data, tmp_path):
    run_dir = tmp_path / "run"
    openai_server.inject("GET /fine_tuning/jobs/{fine_tuning_job_id}/checkpoints", [400])  # the watcher "crashes"
    with pytest.raises(FtframeError):
        run_tiny(run_dir, overrides(openai_server, chat_data, **{"eval.baseline": "false"}))
    assert len(openai_server.jobs) == 1
    result = run_tiny(run_dir, overrides(openai_server, chat_data, **{"eval.baseline": "false"}))
    assert result.ok and len(openai_server.jobs) == 1 and len(openai_server.calls("POST", "/v1/files")) == 2


def test_failed_job_fails_the_run_with_the_providers_error(openai_server, chat_data, tmp_path):
    openai_server.fail_jobs = True
    with pytest.raises(FtframeError, match="ended without a model: Fine-tuning job failed due to an internal error"):
        run_tiny(tmp_path / "run", overrides(openai_server, chat_data, **{"eval.baseline": "false"}))
    state = json.loads((tmp_path / "run" / "provider_job.json").read_text())
    assert state["status"] == "failed" and state["fine_tuned_model"] is None
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed"


def test_transient_errors_are_retried_and_a_lost_create_reply_makes_no_second_job(openai_server, chat_data,
                                                                                   tmp_path):
    openai_server.inject("POST /files", [429, 500])
    openai_server.inject("POST /fine_tuning/jobs", [500], after_effect=True)  # created, but the reply is lost
    openai_server.inject("POST /fine_tuning/jobs", [503])                     # not created
    openai_server.inject("GET /fine_tuning/jobs/{fine_tuning_job_id}", [502])
    openai_server.inject("POST /chat/completions", [429])
    result = run_tiny(tmp_path / "run", overrides(openai_server, chat_data))
    assert result.ok, result.error
    assert len(openai_server.jobs) == 1
    assert len(openai_server.calls("POST", "/v1/fine_tuning/jobs")) == 1  # no retry: the lookup found it
    assert len(openai_server.calls("POST", "/v1/files")) == 4  # 2 failures + 2 splits


def test_retries_are_bounded(openai_server, chat_data, tmp_path):
    openai_server.inject("POST /files", [500] * 10)
    with pytest.raises(FtframeError, match="did not answer while uploading train.jsonl.*after 2 retries"):
        run_tiny(tmp_path / "run", overrides(openai_server, chat_data, **{
            "backend.max_retries": 2, "eval.baseline": "false"}))
    assert len(openai_server.calls("POST", "/v1/files")) == 3


def test_permanent_error_is_not_retried(openai_server, chat_data, tmp_path):
    with pytest.raises(FtframeError, match=r"OpenAI refused creating the fine-tuning job \(400: .*learning_rate_mul"):
        run_tiny(tmp_path / "run", overrides(openai_server, chat_data, **{
            "backend.learning_rate_multiplier": 0, "eval.baseline": "false"}))
    assert len(openai_server.calls("POST", "/v1/fine_tuning/jobs")) == 1


def test_ctrl_c_asks_then_cancels_the_job(openai_server, chat_data, tmp_path, monkeypatch):
    from ftframe_providers import watch

    asked = []
    monkeypatch.setattr(watch, "ask_on_interrupt", lambda job_id, provider: asked.append(job_id) or "cancel")
    sleeps = iter([None])

    def interrupt(_seconds):  # the user presses Ctrl-C while the watcher waits for the second poll
        if next(sleeps, "again") is None:
            raise KeyboardInterrupt

    monkeypatch.setattr(watch, "time", SimpleNamespace(sleep=interrupt, monotonic=time.monotonic))
    with pytest.raises(KeyboardInterrupt):
        run_tiny(tmp_path / "run", overrides(openai_server, chat_data, **{"eval.baseline": "false"}))
    (job,) = openai_server.jobs.values()
    assert asked == [job["id"]] and job["status"] == "cancelled"
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "interrupted"


def test_score_mode_is_refused_before_any_request(openai_server, chat_data, tmp_path):
    with pytest.raises(ConfigError, match="eval.mode=score.*use eval.mode=generate"):
        run_tiny(tmp_path / "run", overrides(openai_server, chat_data, **{"eval.mode": "score"}))
    assert openai_server.requests == []
