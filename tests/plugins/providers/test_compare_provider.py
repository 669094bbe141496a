"""``ftframe compare RUN openai:MODEL``: a provider model answers the run's test examples through the provider
backend's predictor (the loopback OpenAI server checks every request against the published API)."""

from __future__ import annotations

import json

from ftframe.commands import main
from ftframe.testing import write_run_dir

LABELS = ["billing", "technical"]


def test_a_provider_model_answers_the_runs_examples(openai_server, tmp_path, capsys):
    rows = [(f"invoice {i} charged twice" if i % 2 == 0 else f"app crash {i}", LABELS[i % 2], LABELS[i % 2])
            for i in range(20)]
    run = write_run_dir(tmp_path / "A", rows)
    out = tmp_path / "out"
    code = main(["compare", str(run), "openai:gpt-4.1-mini", "--provider-option", f"base_url={openai_server.url}/v1",
                 "--provider-option", "concurrency=2", "--out", str(out), "--resamples", "200"])
    assert openai_server.violations == []
    assert openai_server.chat_models == ["gpt-4.1-mini"] * 20
    # the fake's base model answers "I am not sure." to everything: B is worse, and refused
    assert code == 1
    predictions = [json.loads(x) for x in (out / "eval_B" / "predictions.jsonl").read_text().splitlines()]
    assert {p["predicted"] for p in predictions} == {"I am not sure."} and len(predictions) == 20
    comp = json.loads((out / "comparison.json").read_text())
    assert comp["b"]["name"] == "gpt-4.1-mini (openai)" and comp["b"]["predictions"] == "answered A's test examples"
    head = next(d for d in comp["deltas"] if d["name"] == "macro_f1")
    assert head["a"] == 1.0 and head["b"] == 0.0 and head["verdict"] == "B worse"
    assert "B must not replace A" in capsys.readouterr().out


def test_provider_options_are_checked_before_any_request(openai_server, tmp_path, capsys):
    run = write_run_dir(tmp_path / "A", [("invoice 1", "billing", "billing"), ("crash 2", "technical", "technical")])
    assert main(["compare", str(run), "openai:gpt-4.1-mini", "--provider-option", "concurrency=0",
                 "--out", str(tmp_path / "out")]) == 2
    assert "backend.concurrency" in capsys.readouterr().err
    assert openai_server.chat_models == []
