"""``ftframe monitor``: latency, errors, prompt lengths and drift from a request log; golden-set candidates;
``ftframe compare --log`` on the champion's and challenger's logged answers."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from ftframe.commands import main
from ftframe.lifecycle.drift import drift_score, prompt_text
from ftframe.lifecycle.request_log import Answer, RequestLogWriter, RequestRecord
from ftframe.testing import write_run_dir

TICKETS = Path(__file__).resolve().parents[2] / "plugins" / "ftframe_datasets" / "triage" / "tickets.jsonl"
BANKING = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "banking77" / "test.csv"


def tickets() -> list[list[dict]]:
    """The triage tickets' prompts (system + user), shuffled with a fixed seed."""
    rows = [json.loads(line)["messages"][:-1] for line in TICKETS.read_text(encoding="utf-8").splitlines()]
    random.Random(0).shuffle(rows)
    return rows


def scramble(text: str, rng: random.Random) -> str:
    """Each word's letters shuffled: the same characters, words the training data never had."""
    out = []
    for w in text.split():
        letters = list(w)
        rng.shuffle(letters)
        out.append("".join(letters))
    return " ".join(out)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run dir whose training split is 430 triage tickets (the other 290 are held out)."""
    d = write_run_dir(tmp_path_factory.mktemp("run") / "run", [("x", "billing", "billing"), ("y", "technical", "billing")])
    train = [{"messages": [*p, {"role": "assistant", "content": "billing"}]} for p in tickets()[:430]]
    (d / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train), encoding="utf-8")
    return d


def write_log(path: Path, prompts: list[list[dict]], *, content: bool = True, latencies=None, statuses=None,
              tokens=None) -> Path:
    with RequestLogWriter(path, content=content) as log:
        for i, prompt in enumerate(prompts):
            status = statuses[i] if statuses else 200
            ok = status < 400
            answers = [Answer("champion", "runs/A", True, latencies[i] if latencies else 100.0, status=status,
                              error=None if ok else "server_error", prompt_tokens=tokens[i] if tokens else 40,
                              completion_tokens=2, text="billing" if ok else None)] if status != 400 else []
            log.write(RequestRecord(route="answer", messages=prompt, answers=answers, status=status,
                                    error=None if ok else ("invalid_request_error" if status == 400 else "server_error")))
    return path


def report(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------- drift
def test_drift_separates_held_out_from_scrambled_and_other_domain_prompts():
    prompts = [prompt_text(p) for p in tickets()]
    train, held_out = prompts[:430], prompts[430:]
    same = drift_score(train, held_out)
    assert abs(same.score) < 0.02 and same.p_value > 0.01 and not same.drifted(max_score=0.05, alpha=0.01)
    rng = random.Random(1)
    scrambled = drift_score(train, [scramble(t, rng) for t in held_out])
    assert scrambled.score > 0.2 and scrambled.p_value <= 0.01 and scrambled.drifted(max_score=0.05, alpha=0.01)
    if BANKING.is_file():  # another domain: banking questions
        with BANKING.open(encoding="utf-8") as f:
            bank = [r["text"] for r in csv.DictReader(f)][:290]
        other = drift_score(train, bank)
        assert other.score > 0.2 and other.drifted(max_score=0.05, alpha=0.01)
        assert {"card", "my card"} & {t["term"] for t in other.top_terms}


def test_drift_sees_word_order_through_bigrams():
    prompts = [prompt_text(p) for p in tickets()]
    rng = random.Random(2)
    reordered = [" ".join(rng.sample(t.split(), len(t.split()))) for t in prompts[430:]]
    assert drift_score(prompts[:430], reordered).drifted(max_score=0.05, alpha=0.01)


# -------------------------------------------------------------------------------------------- monitor
def test_monitor_reports_latency_errors_and_passes_in_distribution(run, tmp_path, capsys):
    prompts = tickets()[430:530]
    statuses = [500 if i < 3 else 400 if i == 3 else 200 for i in range(100)]
    log = write_log(tmp_path / "requests.jsonl", prompts, latencies=[float(i + 1) for i in range(100)],
                    statuses=statuses)
    out = tmp_path / "monitor.json"
    assert main(["monitor", str(log), "--against", str(run), "--out", str(out)]) == 0
    r = report(out)
    assert r["requests"] == 100 and r["statuses"] == {"200": 96, "400": 1, "500": 3}
    assert r["errors"] == {"server_error": 3, "invalid_request_error": 1}
    assert r["error_rate"] == pytest.approx(0.03)  # the malformed request (400) is not a service failure
    ok = [float(i + 1) for i in range(4, 100)]
    import numpy as np

    assert r["latency"]["served"]["p50"] == pytest.approx(round(float(np.percentile(ok, 50)), 1))
    assert r["latency"]["served"]["p95"] == pytest.approx(round(float(np.percentile(ok, 95)), 1))
    assert r["drift"]["statistic"] == "jensen_shannon_words" and r["ok"] is True
    assert r["too_long"]["limit"] == 512 and r["too_long"]["count"] == 0
    assert "HEALTHY" in capsys.readouterr().out
    assert main(["monitor", str(log), "--against", str(run), "--max-error-rate", "0.01"]) == 1
    assert main(["monitor", str(log), "--max-p95-ms", "50"]) == 1


def test_monitor_flags_drift_and_long_prompts(run, tmp_path, capsys):
    rng = random.Random(3)
    prompts = [[p[0], {"role": "user", "content": scramble(p[1]["content"], rng)}] for p in tickets()[430:630]]
    tokens = [600 if i % 10 == 0 else 40 for i in range(200)]  # 10% over backend.max_length=512
    log = write_log(tmp_path / "requests.jsonl", prompts, tokens=tokens)
    out = tmp_path / "monitor.json"
    assert main(["monitor", str(log), "--against", str(run), "--out", str(out)]) == 1
    failed = {c["name"] for c in report(out)["checks"] if not c["passed"]}
    assert failed == {"drift", "prompts over the training maximum"}
    assert report(out)["too_long"]["share"] == pytest.approx(0.1)
    assert "ALERT" in capsys.readouterr().out


def test_monitor_without_content_skips_drift(run, tmp_path, capsys):
    log = write_log(tmp_path / "requests.jsonl", tickets()[:20], content=False)
    out = tmp_path / "monitor.json"
    assert main(["monitor", str(log), "--against", str(run), "--out", str(out)]) == 0
    assert report(out)["drift"] is None
    assert "drift is not computed" in " ".join(capsys.readouterr().out.split())


def test_draw_golden_candidates(tmp_path):
    prompts = tickets()[:30]
    log = write_log(tmp_path / "requests.jsonl", prompts + prompts[:5])  # five repeated prompts
    golden = tmp_path / "golden.jsonl"
    assert main(["monitor", str(log), "--draw-golden", str(golden), "--size", "100"]) == 0
    rows = [json.loads(x) for x in golden.read_text().splitlines()]
    assert len(rows) == 30  # distinct prompts only
    assert all(r["messages"][-1] == {"role": "assistant", "content": "billing"} for r in rows)
    sources = [json.loads(x) for x in (tmp_path / "golden.sources.jsonl").read_text().splitlines()]
    assert len(sources) == 30 and sources[0]["champion"] == "billing"
    from omegaconf import OmegaConf

    from ftframe.engine.data_source import load_data
    from ftframe.plugins import Registry, get_plugin_manager

    registry = Registry(get_plugin_manager())
    loaded, fmt = load_data(OmegaConf.create({"name": "auto", "path": str(golden)}), registry, registry.pm)
    assert fmt == "chat_jsonl" and len(loaded.examples) == 30 and not loaded.rejected


def test_bad_monitor_input(tmp_path, capsys):
    assert main(["monitor", str(tmp_path / "none.jsonl")]) == 2
    assert "no request log there" in capsys.readouterr().err
    log = write_log(tmp_path / "requests.jsonl", tickets()[:3], content=False)
    assert main(["monitor", str(log), "--since", "yesterday"]) == 2
    assert "--since 'yesterday'" in capsys.readouterr().err
    assert main(["monitor", str(log), "--draw-golden", str(tmp_path / "g.jsonl")]) == 2
    assert "needs content logging on" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ compare --log
def test_compare_reads_shadow_answers_from_the_log(tmp_path, capsys):
    """The champion right on half the logged requests, the challenger on all: paired on the log, gold answers
    from the golden file (one prompt holds an e-mail address: matched after the log's redaction)."""
    labels = ["billing", "shipping", "technical"]
    rows = [(f"ticket {i} about {labels[i % 3]}" + (" from a.b@example.com" if i == 0 else ""), labels[i % 3])
            for i in range(60)]
    run = write_run_dir(tmp_path / "A", [(u, g, g) for u, g in rows])
    log = tmp_path / "requests.jsonl"
    with RequestLogWriter(log, content=True) as w:
        for i, (u, g) in enumerate(rows):
            prompt = [{"role": "system", "content": "Classify."}, {"role": "user", "content": u}]
            w.write(RequestRecord(route="shadow", messages=prompt, answers=[
                Answer("champion", str(run), True, 50.0, text=g if i % 2 == 0 else labels[(i + 1) % 3]),
                Answer("challenger", "runs/B", False, 60.0, text=g)]))
        w.write(RequestRecord(route="shadow", messages=[{"role": "user", "content": "not in the golden set"}],
                              answers=[Answer("champion", str(run), True, 50.0, text="billing"),
                                       Answer("challenger", "runs/B", False, 60.0, text="shipping")]))
    out = tmp_path / "out"
    golden = run / "data" / "test.jsonl"
    assert main(["compare", "--log", str(log), "--data", str(golden), "--out", str(out), "--resamples", "200"]) == 0
    comp = json.loads((out / "comparison.json").read_text())
    head = next(d for d in comp["deltas"] if d["name"] == "accuracy")
    assert (head["a"], head["b"]) == (pytest.approx(0.5), pytest.approx(1.0)) and head["verdict"] == "B better"
    assert comp["examples"] == 61 and "60 with a gold answer" in comp["paired_on"]
    assert main(["compare", "--log", str(log), "--out", str(out), "--resamples", "200"]) == 2
    assert "no example has a gold answer" in capsys.readouterr().err
