"""ftframe serve under load: batched answers, response_format, queue-full 429, time limit, disconnects,
graceful SIGTERM and malformed bodies — through the official openai client and raw HTTP on loopback."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import pytest
from uvicorn_loopback import uvicorn_on_loopback

from ftframe.engine.saved_run import load_saved_run
from ftframe.serving import ModelServer, ServeOptions, create_app

SCHEMA = {"type": "object", "required": ["label"], "additionalProperties": False,
          "properties": {"label": {"enum": ["billing", "technical"]}, "ticket": {"type": "integer"}}}


@pytest.fixture(scope="module")
def saved(finished_run_copy):
    return load_saved_run(finished_run_copy("serve-batching"))


@contextlib.contextmanager
def serving(saved, *, slow: float = 0.0, **options):
    """A server on a free loopback port (uvicorn in a thread); ``slow`` seconds added to each forward pass
    so that requests overlap and stay in flight long enough to be observed."""
    hook = saved.model.register_forward_pre_hook(lambda *a: time.sleep(slow)) if slow else None
    server = ModelServer(saved.model, saved.tokenizer, "tiny", ServeOptions(**options))
    try:
        with uvicorn_on_loopback(create_app(server)) as (url, srv, thread):
            yield url, server, srv, thread
    finally:
        if hook is not None:
            hook.remove()


def client(url: str):
    from openai import OpenAI

    return OpenAI(base_url=url, api_key="unused", max_retries=0)


def ask(url: str, text: str, **kwargs) -> str:
    messages = [{"role": "system", "content": "Classify."}, {"role": "user", "content": text}]
    return client(url).chat.completions.create(model="tiny", messages=messages, temperature=0, **kwargs)


def test_concurrent_requests_share_decoding_steps_and_get_their_lone_answers(saved):
    texts = [f"invoice {i} charged twice" if i % 2 else f"app crash error {i}" for i in range(8)]
    with serving(saved, slow=0.01) as (url, server, _, _):
        alone = [ask(url, t, max_tokens=10).choices[0].message.content for t in texts]
        steps_alone = server.loop.stats["steps"]
        with ThreadPoolExecutor(max_workers=8) as pool:
            together = list(pool.map(lambda t: ask(url, t, max_tokens=10).choices[0].message.content, texts))
        steps_together = server.loop.stats["steps"] - steps_alone
    assert together == alone
    assert steps_together < steps_alone  # the eight requests shared forward passes


def test_response_format_json_schema_and_json_object(saved):
    from jsonschema import validate

    fmt = {"type": "json_schema", "json_schema": {"name": "ticket", "schema": SCHEMA, "strict": True}}
    with serving(saved) as (url, _, _, _):
        free = ask(url, "invoice 3 charged twice", max_tokens=40).choices[0].message.content
        reply = ask(url, "invoice 3 charged twice", max_tokens=60, response_format=fmt).choices[0]
        obj = ask(url, "app crash", max_tokens=60, response_format={"type": "json_object"}).choices[0]
        streamed = "".join(c.choices[0].delta.content or "" for c in ask(
            url, "invoice 3 charged twice", max_tokens=60, response_format=fmt, stream=True) if c.choices)
    with pytest.raises(ValueError):
        json.loads(free)  # the tiny model writes no JSON of its own
    validate(json.loads(reply.message.content), SCHEMA)
    assert reply.finish_reason == "stop"
    assert isinstance(json.loads(obj.message.content), dict)
    assert streamed == reply.message.content


@pytest.mark.parametrize(("response_format", "param"), [
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "frog"}}}, "response_format.json_schema.schema"),
    ({"type": "yaml"}, "response_format.type"),
    ({"type": "json_schema"}, "response_format.json_schema"),
])
def test_a_bad_response_format_is_a_400_naming_it(saved, response_format, param):
    from openai import BadRequestError

    with serving(saved) as (url, _, _, _), pytest.raises(BadRequestError) as info:
        ask(url, "x", max_tokens=4, response_format=response_format)
    assert info.value.status_code == 400 and info.value.body["param"] == param


def test_a_deeply_nested_body_is_a_400_in_openais_shape(saved):
    with serving(saved) as (url, _, _, _):
        r = httpx.post(f"{url}/chat/completions", content=b"[" * 100_000, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert set(r.json()["error"]) == {"message", "type", "param", "code"} and "nested" in r.json()["error"]["message"]


def test_a_full_queue_answers_429_with_retry_after(saved):
    from openai import RateLimitError

    with serving(saved, slow=0.05, max_batch=1, max_queue=1) as (url, server, _, _):
        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(ask, url, "app crash", max_tokens=40)
            while server.loop.busy < 1:
                time.sleep(0.01)
            second = pool.submit(ask, url, "invoice", max_tokens=40)
            while server.loop.busy < 2:
                time.sleep(0.01)
            messages = [{"role": "user", "content": "x"}]
            r = httpx.post(f"{url}/chat/completions", json={"model": "tiny", "messages": messages, "max_tokens": 2})
            with pytest.raises(RateLimitError) as info:
                ask(url, "x", max_tokens=2)
            assert first.result().choices[0].finish_reason and second.result().choices[0].finish_reason
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["code"] == "server_busy"
    assert info.value.status_code == 429


def test_a_request_past_its_time_limit_is_504_and_leaves_the_batch(saved):
    from openai import APIError, InternalServerError

    with serving(saved, slow=0.05, request_timeout=0.5) as (url, server, _, _):
        with pytest.raises(InternalServerError) as info:
            ask(url, "app crash", max_tokens=200)
        with pytest.raises(APIError) as streamed:
            list(ask(url, "app crash", max_tokens=200, stream=True))
        assert server.loop.stats["timed_out"] == 2 and server.loop.busy == 0
    assert info.value.status_code == 504 and info.value.code == "timeout"
    assert "time" in str(streamed.value)


def test_a_prompt_over_the_limit_is_a_400(saved):
    from openai import BadRequestError

    with serving(saved, max_prompt_tokens=5) as (url, _, _, _), pytest.raises(BadRequestError) as info:
        ask(url, "a prompt that is certainly longer than five tokens", max_tokens=2)
    assert info.value.code == "context_length_exceeded" and "--max-prompt-tokens" in info.value.message


def test_a_client_that_disconnects_stops_costing_steps(saved):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "app crash"}], "max_tokens": 400,
            "temperature": 0, "stream": True}
    with serving(saved, slow=0.05) as (url, server, _, _):
        with httpx.stream("POST", f"{url}/chat/completions", json=body) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("data: ")
            next(lines)
        started = time.monotonic()
        while server.loop.busy and time.monotonic() - started < 5:
            time.sleep(0.05)
        steps = server.loop.stats["steps"]
        assert server.loop.busy == 0 and server.loop.stats["cancelled"] == 1
        assert steps < 100  # 400 tokens were asked for; decoding stopped when the reader left
        nonstream = dict(body, stream=False)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/chat/completions", json=nonstream, timeout=0.5)
        started = time.monotonic()
        while server.loop.busy and time.monotonic() - started < 5:
            time.sleep(0.05)
        assert server.loop.busy == 0 and server.loop.stats["cancelled"] == 2


def test_sigterm_finishes_the_requests_in_flight_and_takes_no_new_ones(saved):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "app crash"}], "max_tokens": 30,
            "temperature": 0, "stream": True}
    with serving(saved, slow=0.03) as (url, server, srv, thread):
        with httpx.stream("POST", f"{url}/chat/completions", json=body) as r:
            lines = r.iter_lines()
            next(lines)
            srv.handle_exit(signal.SIGTERM, None)  # uvicorn's own signal handler
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        chunks = [json.loads(x[6:]) for x in rest if x.startswith("data: {")]
        assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
        thread.join(timeout=30)
        assert not thread.is_alive()
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"{url}/chat/completions", json=body)
        assert server.loop.thread is not None and not server.loop.thread.is_alive()
