"""The preflight report on real and broken data, with the tiny tokenizer and its chat template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ftframe_formats.chat_jsonl import ChatJsonl, ChatJsonlConfig
from ftframe_formats.csv_labels import CsvLabels, CsvLabelsConfig

from ftframe.api import Example
from ftframe.engine.chat import encode
from ftframe.preflight import throughput
from ftframe.preflight.render import print_report, write_histogram
from ftframe.preflight.report import build_report, estimate

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
COOKBOOK = SHARED / "openai_cookbook" / "toy_chat_fine_tuning.jsonl"


def shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


def chat(user: str, reply: str, source: str = "") -> Example:
    return Example([{"role": "user", "content": user}, {"role": "assistant", "content": reply}], source=source)


# One line per cookbook error type (the notebook's own names), plus ftframe's extra checks.
COOKBOOK_CASES = {
    "data_type": "[1, 2]",
    "missing_messages_list": json.dumps({"messages": []}),
    "message_missing_key": json.dumps({"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]}),
    "message_unrecognized_key": json.dumps({"messages": [{"role": "user", "content": "hi", "mood": "ok"},
                                                         {"role": "assistant", "content": "x"}]}),
    "unrecognized_role": json.dumps({"messages": [{"role": "robot", "content": "hi"},
                                                  {"role": "assistant", "content": "x"}]}),
    "missing_content": json.dumps({"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}),
    "example_missing_assistant_message": json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
    "empty_assistant_message": json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                        {"role": "assistant", "content": ""}]}),
    "malformed_json": '{"messages": [',
}


def test_cookbook_error_types_are_counted_with_file_and_line(tmp_path, tiny_tokenizer):
    good = COOKBOOK.read_text(encoding="utf-8").splitlines() if COOKBOOK.exists() else []
    lines = good + list(COOKBOOK_CASES.values()) + [COOKBOOK_CASES["unrecognized_role"]]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = ChatJsonl(ChatJsonlConfig(path=str(path), on_error="skip")).load()
    report = build_report(splits={"train": data.examples}, rejected=data.rejected, tokenizer=tiny_tokenizer,
                          max_length=None)
    errors = report["format_errors"]
    assert set(errors) == set(COOKBOOK_CASES)
    assert errors["unrecognized_role"]["count"] == 2
    first_bad = len(good) + 1
    for i, kind in enumerate(COOKBOOK_CASES, start=first_bad):
        assert errors[kind]["where"][0]["source"] == f"{path}:{i}"
    assert errors["unrecognized_role"]["where"][1]["source"] == f"{path}:{len(lines)}"
    assert all(p["level"] == "error" for p in report["problems"] if "row(s) with" in p["message"])
    assert report["examples"] == len(good)


def test_token_statistics_match_the_training_encoding(tiny_tokenizer):
    examples = [chat("invoice charged twice", "billing", "a:1"), chat("app crash " * 30, "technical", "a:2"),
                Example([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello", "weight": 0}, {"role": "user", "content": "bye"},
                         {"role": "assistant", "content": "ciao"}], source="a:3")]
    encoded = [encode(tiny_tokenizer, ex.messages) for ex in examples]
    limit = len(encoded[0].input_ids) + 1
    report = build_report(splits={"train": examples}, rejected=[], tokenizer=tiny_tokenizer, max_length=limit)
    tok = report["tokens"]
    assert tok["lengths"]["total"] == [len(e.input_ids) for e in encoded]
    assert tok["lengths"]["trained"] == [e.n_trained for e in encoded]  # weight 0 replies are not counted
    assert tok["total"]["min"] == min(tok["lengths"]["total"]) and tok["total"]["max"] == max(tok["lengths"]["total"])
    over = [ex.source for ex, e in zip(examples, encoded) if len(e.input_ids) > limit]
    assert tok["over_max_length"] == len(over) >= 1 and tok["over_max_length_where"] == over
    assert "cut from the end" in tok["action"] and "transforms.too_long" in tok["action"]
    assert tok["per_split"]["train"]["tokens_within_max_length"] == sum(min(len(e.input_ids), limit) for e in encoded)


def test_class_balance_duplicates_and_leakage_on_banking77(tmp_path, tiny_tokenizer):
    src = shared(SHARED / "banking77" / "train.csv").read_text(encoding="utf-8").splitlines()
    sample = tmp_path / "b77.csv"
    sample.write_text("\n".join(src[:41] + [src[1], src[2].upper()]) + "\n", encoding="utf-8")  # a copy, a near copy
    data = CsvLabels(CsvLabelsConfig(path=str(sample), label_column="category")).load()
    train, test = data.examples[:40], data.examples[40:]
    report = build_report(splits={"train": train, "test": test}, rejected=[], tokenizer=tiny_tokenizer,
                          max_length=512, task_type="classification", leak_level="error")
    cb = report["class_balance"]
    assert sum(cb["per_split"]["train"].values()) == 40 and cb["labels"] >= 1
    assert report["duplicates"]["groups"] == 1 and report["duplicates"]["where"][0] == [f"{sample}:2", f"{sample}:42"]
    leak = report["leakage"]
    assert (leak["exact"], leak["near"]) == (1, 1)
    assert leak["where"]["near"][0] == {"held_out": f"{sample}:43", "train": f"{sample}:3"}
    [problem] = [p for p in report["problems"] if p["message"].startswith("train/test leakage")]
    assert problem["level"] == "error" and "data_checks.allow_leakage" in problem["message"]


def test_estimate_uses_recorded_throughput_and_provider_cost(tmp_path, monkeypatch, tiny_tokenizer):
    monkeypatch.setenv("FTFRAME_CACHE_DIR", str(tmp_path))
    assert throughput.recorded("m", "lora") is None
    for tps in (100.0, 300.0, 200.0):
        throughput.record("m", "lora", tps, 1000)
    throughput.record("other", "lora", 5.0, 10)
    rate = throughput.recorded("m", "lora")
    assert rate["tokens_per_second"] == 200.0 and rate["runs"] == 3 and rate["source"].startswith("recorded")
    report = build_report(splits={"train": [chat("hi", "yo")] * 3}, rejected=[], tokenizer=tiny_tokenizer,
                          max_length=None)
    tokens = report["tokens"]["per_split"]["train"]["total_tokens"]
    est = estimate(report, epochs=2, throughput=rate, cost={"usd": 1.5})
    assert est["local"]["seconds"] == round(2 * tokens / 200.0, 1)
    assert est["provider"] == {"usd": 1.5}


def test_provider_cost_is_asked_only_from_backends_that_have_it():
    from ftframe.preflight.stage import provider_cost

    class Provider:
        def estimate_cost(self, billed_tokens_per_epoch: int, n_examples: int) -> dict:
            return {"billed_tokens": billed_tokens_per_epoch * 3, "examples": n_examples}

    assert provider_cost(object(), 10, 2) is None
    assert provider_cost(Provider(), 10, 2) == {"billed_tokens": 30, "examples": 2}


def test_measured_throughput_on_the_tiny_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rate = throughput.measure(model, seq_len=16, batch_size=2)
    assert rate["tokens_per_second"] > 0 and rate["source"].startswith("measured")
    assert all(p.grad is None for p in model.parameters())  # leaves no gradients behind


def test_terminal_report_and_png(tmp_path, tiny_tokenizer):
    from rich.console import Console

    examples = [chat(f"question {i}", "answer", f"f:{i}") for i in range(5)] + [chat("question 0", "answer", "f:9")]
    report = build_report(splits={"train": examples[:5], "test": examples[5:]}, rejected=[], tokenizer=tiny_tokenizer,
                          max_length=20)
    report["estimate"] = estimate(report, epochs=1, throughput=None, cost=None)
    con = Console(record=True, width=120)
    print_report(con, report)
    text = con.export_text()
    assert "tokens per example" in text and "train/test leakage: 1 exact" in text and "warning:" in text
    png = write_histogram(tmp_path / "h.png", report)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
