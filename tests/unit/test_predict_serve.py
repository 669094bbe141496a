"""ftframe predict / export / serve on a finished tiny run; the server is driven by the official openai client."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest
from uvicorn_loopback import uvicorn_on_loopback

from ftframe.commands import main
from ftframe.engine.saved_run import load_saved_run

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def run_dir(finished_run_copy) -> Path:
    return finished_run_copy("serve")


@pytest.fixture(scope="module")
def saved(run_dir):
    return load_saved_run(run_dir)


@pytest.fixture(scope="module")
def server(saved):
    """The app on a real loopback port, served by uvicorn in a thread."""
    from ftframe.serving import ModelServer, create_app

    with uvicorn_on_loopback(create_app(ModelServer(saved.model, saved.tokenizer, "tiny"), token=TOKEN)) as (url, _, _):
        yield url


@pytest.fixture
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server, api_key=TOKEN, max_retries=0)


def messages(text: str) -> list[dict]:
    return [{"role": "system", "content": "Classify."}, {"role": "user", "content": text}]


def test_models(client):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert client.models.retrieve("tiny").owned_by == "ftframe"


def test_chat_completion_is_the_models_greedy_answer(client, saved):
    reply = client.chat.completions.create(model="tiny", messages=messages("invoice 3 charged twice"),
                                           max_tokens=6, temperature=0)
    expected = saved.predictor().generate([messages("invoice 3 charged twice")], max_new_tokens=6)[0]
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip() == expected
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens <= 6 and reply.usage.prompt_tokens > 0
    assert reply.object == "chat.completion" and reply.model == "tiny"


def test_streaming_gives_the_same_text(client):
    kwargs = {"model": "tiny", "messages": messages("app crash error 7"), "max_tokens": 8, "temperature": 0}
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 8


def test_wrong_or_missing_token_is_401(server):
    from openai import AuthenticationError, OpenAI

    bad = OpenAI(base_url=server, api_key="wrong", max_retries=0)
    with pytest.raises(AuthenticationError) as info:
        bad.chat.completions.create(model="tiny", messages=messages("hi"), max_tokens=2)
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    with pytest.raises(AuthenticationError):
        bad.models.list()
    r = httpx.get(f"{server}/models")
    assert r.status_code == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "tiny"}, "messages"),
    ({"model": "tiny", "messages": []}, "messages"),
    ({"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": "tiny", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "temperature": 7}, "temperature"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
])
def test_malformed_requests_are_400(client, body, param):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as info:
        client.post("/chat/completions", body=body, cast_to=object)
    assert info.value.status_code == 400
    assert info.value.body["param"] == param and info.value.body["type"] == "invalid_request_error"


def test_invalid_json_unknown_model_and_url(server, client):
    from openai import NotFoundError

    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    r = httpx.post(f"{server}/chat/completions", content=b"{not json", headers=headers)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    with pytest.raises(NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=messages("hi"), max_tokens=2)
    assert info.value.code == "model_not_found"
    r = httpx.get(f"{server}/nope", headers=headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"


def test_concurrent_requests_get_their_own_answers(client):
    texts = [f"invoice {i} charged twice" if i % 2 else f"app crash error {i}" for i in range(6)]

    def ask(text: str, stream: bool) -> str:
        kwargs = {"model": "tiny", "messages": messages(text), "max_tokens": 6, "temperature": 0}
        if stream:
            return "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**kwargs, stream=True)
                           if c.choices)
        return client.chat.completions.create(**kwargs).choices[0].message.content

    sequential = [ask(t, False) for t in texts]
    with ThreadPoolExecutor(max_workers=6) as pool:
        parallel = list(pool.map(ask, texts, [i % 2 == 0 for i in range(6)]))
    assert parallel == sequential


def test_stop_sequence_cuts_the_answer(client):
    kwargs = {"model": "tiny", "messages": messages("app crash error 2"), "max_tokens": 12, "temperature": 0}
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    if len(whole) < 3:
        pytest.skip("the tiny model answered too little to cut")
    stop = whole[1:3]
    cut = client.chat.completions.create(**kwargs, stop=[stop]).choices[0]
    assert cut.message.content == whole[: whole.index(stop)] and cut.finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        **kwargs, stop=[stop], stream=True) if c.choices)
    assert streamed == cut.message.content


def test_predict_command_reproduces_the_runs_predictions(run_dir, tmp_path, capsys):
    out = tmp_path / "preds.jsonl"
    assert main(["predict", str(run_dir), "--input", str(run_dir / "data" / "test.jsonl"), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    recorded = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert [r["predicted"] for r in rows] == [r["predicted"] for r in recorded]
    assert [r["gold"] for r in rows] == [r["gold"] for r in recorded]
    assert rows[0]["source"].endswith("test.jsonl:1")


def test_predict_rejects_bad_input_naming_the_line(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": "nope"}\n')
    assert main(["predict", str(run_dir), "--input", str(bad)]) == 2
    assert f"{bad}:2" in capsys.readouterr().err
    assert not (tmp_path / "bad.predictions.jsonl").exists()
    assert main(["predict", str(tmp_path / "missing-run"), "--input", str(bad)]) == 2


def test_export_command(run_dir, capsys):
    assert main(["export", str(run_dir), "exporters=[merged]"]) == 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["exports"]["merged"]["verified"] is True
    assert main(["export", str(run_dir), "exporters=[nosuch]"]) == 2
    assert "nosuch" in capsys.readouterr().err
