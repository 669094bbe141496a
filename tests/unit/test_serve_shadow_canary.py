"""ftframe serve with a champion and a challenger: shadow and canary routing over loopback with the official
openai client, sticky users, both answers in the request log, PII redaction, content off by default, a
challenger on another base, and bad input. The challenger is the tiny run's adapter with perturbed weights,
so the two answer differently."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from uvicorn_loopback import uvicorn_on_loopback

from ftframe.commands import main
from ftframe.engine.saved_run import load_saved_run
from ftframe.lifecycle import LifecycleError
from ftframe.lifecycle.request_log import RequestLogWriter, hash_user
from ftframe.lifecycle.variants import Router, user_bucket
from ftframe.serving import ModelServer, create_app


def perturb_adapter(run_dir: Path, seed: int) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    path = run_dir / "adapter" / "adapter_model.safetensors"
    weights = load_file(path)
    gen = torch.Generator().manual_seed(seed)
    save_file({k: v + torch.randn(v.shape, generator=gen) if "lora_B" in k else v for k, v in weights.items()}, path)
    return run_dir


@pytest.fixture(scope="module")
def runs(finished_run_copy):
    return finished_run_copy("champion"), perturb_adapter(finished_run_copy("challenger"), 1)


@pytest.fixture(scope="module")
def prompts(runs) -> list[str]:
    """The champion's test prompts (gold answers in its test split) and one more."""
    test = [json.loads(x) for x in (runs[0] / "data" / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    return [next(m["content"] for m in r["messages"] if m["role"] == "user") for r in test] + ["where is my parcel"]


@pytest.fixture(scope="module")
def champion(runs):
    return load_saved_run(runs[0])


@pytest.fixture(scope="module")
def shadow(champion, runs):
    """The challenger loaded as a second adapter on the champion's model, in shadow mode."""
    from ftframe.commands.serve import open_challenger

    challenger, line = open_challenger(champion, str(runs[1]), "shadow", None)
    assert challenger.model is champion.model and "one copy of the base" in line
    return challenger


@contextlib.contextmanager
def serving(model, tokenizer, *, challenger=None, log=None, source=""):
    """A server on a free loopback port (uvicorn in a thread); leaving it waits for shadow answers and
    closes the log."""
    server = ModelServer(model, tokenizer, "tiny", challenger=challenger, request_log=log, source=source)
    with uvicorn_on_loopback(create_app(server)) as (url, _srv, _thread):
        yield url, server


def ask(url: str, text: str, user: str | None = None, stream: bool = False) -> str:
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key="unused", max_retries=0)
    messages = [{"role": "system", "content": "Classify."}, {"role": "user", "content": text}]
    extra = {"user": user} if user is not None else {}
    if stream:
        chunks = client.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=4,
                                                stream=True, **extra)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reply = client.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=4, **extra)
    return reply.choices[0].message.content


@pytest.fixture(scope="module")
def alone(runs, prompts):
    """Each run's answers to prompts, served alone (its own model, adapter merged)."""
    out = {}
    for variant, run in zip(("champion", "challenger"), runs):
        saved = load_saved_run(run)
        with serving(saved.model, saved.tokenizer) as (url, _):
            out[variant] = {p: ask(url, p) for p in prompts}
    assert out["champion"] != out["challenger"]  # the perturbed adapter answers otherwise
    return out


def lines(log: Path) -> list[dict]:
    return [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]


def test_shadow_answers_with_the_champion_and_logs_both_answers(champion, shadow, runs, alone, prompts, tmp_path):
    log = tmp_path / "requests.jsonl"
    with serving(champion.model, champion.tokenizer, challenger=shadow, log=RequestLogWriter(log, content=True),
                 source=str(runs[0])) as (url, server):
        got = {p: ask(url, p) for p in prompts}
        streamed = ask(url, prompts[0], stream=True)
    assert got == alone["champion"] and streamed == alone["champion"][prompts[0]]
    assert server.loop.lane_steps["challenger"] > 0
    records = lines(log)
    assert len(records) == len(prompts) + 1
    for rec, prompt in zip(records, [*prompts, prompts[0]]):
        assert rec["route"] == "shadow" and rec["variant"] == "champion" and rec["status"] == 200
        champ, chall = rec["answers"]
        assert (champ["variant"], champ["served"], chall["variant"], chall["served"]) == (
            "champion", True, "challenger", False)
        assert champ["text"] == alone["champion"][prompt] and chall["text"] == alone["challenger"][prompt]
        assert champ["prompt_tokens"] == chall["prompt_tokens"] == rec["prompt_tokens"] > 0
        assert chall["latency_ms"] > 0 and chall["completion_tokens"] >= 1
        assert champ["model"] == str(runs[0]) and chall["model"] == str(runs[1].resolve())
        assert rec["messages"][-1]["content"] == prompt
    # what the log is for: ftframe compare on the paired answers, ftframe monitor on its health
    out = tmp_path / "compare"
    assert main(["compare", "--log", str(log), str(runs[0]), "--data", str(runs[0] / "data" / "test.jsonl"),
                 "--out", str(out), "--resamples", "100"]) in (0, 1)
    assert json.loads((out / "comparison.json").read_text())["examples"] == len(prompts) + 1
    report = tmp_path / "monitor.json"
    assert main(["monitor", str(log), "--against", str(runs[0]), "--out", str(report)]) in (0, 1)
    assert report.is_file()


def test_content_is_off_by_default_users_are_pseudonyms_and_refusals_logged(champion, shadow, tmp_path):
    from openai import NotFoundError, OpenAI

    log = tmp_path / "requests.jsonl"
    with serving(champion.model, champion.tokenizer, challenger=shadow, log=RequestLogWriter(log)) as (url, _):
        ask(url, "mail me at jo@example.com", user="alice")
        with pytest.raises(NotFoundError):
            OpenAI(base_url=url, api_key="x", max_retries=0).chat.completions.create(
                model="other", messages=[{"role": "user", "content": "hi"}])
    answered, refused = lines(log)
    assert "messages" not in answered and all("text" not in a for a in answered["answers"])
    assert answered["user"] == hash_user("alice") and len(answered["answers"]) == 2
    assert (refused["status"], refused["error"], refused["variant"], refused["answers"]) == (
        404, "model_not_found", None, [])


def test_logged_content_is_pii_redacted(champion, shadow, tmp_path):
    log = tmp_path / "requests.jsonl"
    with serving(champion.model, champion.tokenizer, challenger=shadow,
                 log=RequestLogWriter(log, content=True)) as (url, _):
        ask(url, "I am jo.doe@example.com, call +49 30 1234567", user="bob@example.com")
    (rec,) = lines(log)
    assert rec["messages"][-1]["content"] == "I am [EMAIL], call [PHONE]"
    assert rec["user"] == "[EMAIL]" and rec["redacted"] == {"[EMAIL]": 2, "[PHONE]": 1}


def test_canary_answers_its_share_and_is_sticky_per_user(champion, shadow, alone, prompts, tmp_path):
    log = tmp_path / "requests.jsonl"
    canary = dataclasses.replace(shadow, router=Router("canary", 0.25))
    users = [f"user-{i}" for i in range(16)]
    with serving(champion.model, champion.tokenizer, challenger=canary,
                 log=RequestLogWriter(log, content=True)) as (url, _):
        for i in range(40):
            ask(url, prompts[i % len(prompts)])
        for user in users + users:  # each user twice
            ask(url, prompts[0], user=user)
    records = lines(log)
    anonymous, named = records[:40], records[40:]
    assert sum(r["variant"] == "challenger" for r in anonymous) == 10  # exactly a quarter of 40
    for rec in records:
        assert rec["route"] == "canary" and len(rec["answers"]) == 1 and rec["answers"][0]["served"]
        prompt = rec["messages"][-1]["content"]
        assert rec["answers"][0]["text"] == alone[rec["variant"]][prompt]
    by_user: dict[str, set[str]] = {}
    for rec in named:
        by_user.setdefault(rec["user"], set()).add(rec["variant"])
    assert all(len(v) == 1 for v in by_user.values()) and len(by_user) == len(users)
    assert {u: v.pop() for u, v in by_user.items()} == {
        u: "challenger" if user_bucket(u) < 0.25 else "champion" for u in users}


def test_a_challenger_on_another_base_is_a_model_of_its_own(champion, runs, prompts, tmp_path):
    """Same tokenizer, another base model: loaded on its own base, decoded in its own lane."""
    from omegaconf import OmegaConf

    from ftframe.commands.serve import open_challenger
    from ftframe.testing import tiny_model

    other = Path(shutil.copytree(runs[1], tmp_path / "other"))
    cfg = OmegaConf.load(other / "config.yaml")
    cfg.model.path = str(tiny_model(tmp_path / "base2", seed=1))
    OmegaConf.save(cfg, other / "config.yaml")
    challenger, line = open_challenger(champion, str(other), "shadow", None)
    assert challenger.model is not champion.model and challenger.adapter is None and "model of its own" in line
    own = load_saved_run(other)
    with serving(own.model, own.tokenizer) as (url, _):
        expected = ask(url, prompts[1])
    log = tmp_path / "requests.jsonl"
    with serving(champion.model, champion.tokenizer, challenger=challenger,
                 log=RequestLogWriter(log, content=True)) as (url, _):
        ask(url, prompts[1])
    (rec,) = lines(log)
    assert rec["answers"][1]["text"] == expected


def test_bad_input(champion, runs, tmp_path, capsys):
    bad = Path(shutil.copytree(runs[1], tmp_path / "bad"))
    template = bad / "adapter" / "chat_template.jinja"
    template.write_text(template.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert main(["serve", str(runs[0]), "--shadow", str(bad)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "uses another tokenizer or chat template than the champion" in err and str(bad) in err
    for share in ("1.5", "-0.1", "x"):
        with pytest.raises(SystemExit):
            main(["serve", str(runs[0]), "--canary", str(runs[1]), "--canary-share", share])
        assert "--canary-share: must be a number between 0 and 1" in capsys.readouterr().err
    assert main(["serve", str(runs[0]), "--canary-share", "0.2"]) == 2
    assert "--canary-share needs --canary CHALLENGER" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", str(runs[0]), "--shadow", str(runs[1]), "--canary", str(runs[1])])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(LifecycleError, match="between 0 and 1"):
        Router("canary", 2)
