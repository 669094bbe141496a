"""``ftframe serve`` with tools, driven by the official openai client: a tiny model with the Qwen2.5-style tools
template is first trained (its own loss mask, a few hundred steps) to answer one question with a tool call and
another with text, so the server's whole path runs: tools rendered into the prompt, the call decoded, parsed and
returned as OpenAI's ``tool_calls``; streamed as ``delta.tool_calls``."""

from __future__ import annotations

import json

import pytest
from uvicorn_loopback import uvicorn_on_loopback

from ftframe.tool_calls import CallStream

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ASK_CALL = [{"role": "user", "content": "Weather in Bonn?"}]
ASK_TEXT = [{"role": "user", "content": "Say hello."}]
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Bonn"}'}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny tools-template model after learning its two answers (greedy decoding reproduces them)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftframe.engine.chat import encode
    from ftframe.testing import QWEN_TOOLS_TEMPLATE, tiny_model

    path = tiny_model(tmp_path_factory.mktemp("serve_tools") / "model", chat_template=QWEN_TOOLS_TEMPLATE,
                      hidden_size=64)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    convs = [[*ASK_CALL, {"role": "assistant", "content": None, "tool_calls": [CALL]}],
             [*ASK_TEXT, {"role": "assistant", "content": "Hello there!"}]]
    batches = [encode(tok, c, tools=TOOLS) for c in convs]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    model.train()
    for _ in range(300):
        loss = 0.0
        for enc in batches:
            out = model(input_ids=torch.tensor([enc.input_ids]), labels=torch.tensor([enc.labels]))
            loss = loss + out.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.02:
            break
    model.eval()
    return model, tok


@pytest.fixture(scope="module")
def client(trained):
    from openai import OpenAI

    from ftframe.serving import ModelServer, create_app

    model, tok = trained
    with uvicorn_on_loopback(create_app(ModelServer(model, tok, "tiny-tools"))) as (url, _, _):
        yield OpenAI(base_url=url, api_key="x", max_retries=0)


def test_a_tool_call_comes_back_as_openai_tool_calls(client):
    reply = client.chat.completions.create(model="tiny-tools", messages=ASK_CALL, tools=TOOLS, max_tokens=200,
                                           temperature=0)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Bonn"}  # a JSON string, as OpenAI sends it


def test_a_text_answer_stays_content_and_tool_choice_none_parses_nothing(client):
    reply = client.chat.completions.create(model="tiny-tools", messages=ASK_TEXT, tools=TOOLS, max_tokens=30,
                                           temperature=0)
    assert reply.choices[0].finish_reason == "stop" and reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content == "Hello there!"
    none = client.chat.completions.create(model="tiny-tools", messages=ASK_CALL, tools=TOOLS, tool_choice="none",
                                          max_tokens=200, temperature=0)
    assert none.choices[0].message.tool_calls is None
    assert none.choices[0].message.content.startswith('<tool_call>\n{"name": "get_weather"')


def test_streaming_sends_the_call_as_delta_tool_calls(client):
    chunks = list(client.chat.completions.create(model="tiny-tools", messages=ASK_CALL, tools=TOOLS, max_tokens=200,
                                                 temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ""  # no call syntax leaks as text
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(d.index, d.function.name, json.loads(d.function.arguments)) for d in deltas] == [
        (0, "get_weather", {"city": "Bonn"})]
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["tool_calls"]
    text = list(client.chat.completions.create(model="tiny-tools", messages=ASK_TEXT, tools=TOOLS, max_tokens=30,
                                               temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in text) == "Hello there!"
    assert [c.choices[0].finish_reason for c in text if c.choices[0].finish_reason] == ["stop"]


def test_history_with_a_call_and_its_result_is_accepted(client):
    history = [*ASK_CALL, {"role": "assistant", "content": None, "tool_calls": [CALL]},
               {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 7}'}]
    reply = client.chat.completions.create(model="tiny-tools", messages=history, tools=TOOLS, max_tokens=5)
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")


@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": [{"name": "get_weather"}]}, "tools"),
    ({"tools": TOOLS, "tool_choice": "required"}, "tool_choice"),
    ({"messages": [*ASK_CALL, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}, "messages[1].tool_calls"),
])
def test_malformed_tool_requests_are_400(client, extra, param):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as info:
        client.post("/chat/completions", body={"model": "tiny-tools", "messages": ASK_CALL, **extra}, cast_to=object)
    assert info.value.body["param"] == param


def test_call_stream_holds_back_call_syntax_and_sends_text():
    def run(pieces):
        stream = CallStream()
        sent = [stream.feed(p) for p in pieces]
        return sent, stream.finish()

    sent, (rest, calls) = run(["Chec", "king.\n<tool", '_call>\n{"name": "f", "arg', 'uments": {"x": 1}}\n</tool_call>'])
    assert "".join(sent) == "Checking." and rest == "" and [(c.name, c.arguments) for c in calls] == [("f", {"x": 1})]
    sent, (rest, calls) = run(['{"name"', ': "f", "arguments": {}}'])  # a bare JSON call: nothing sent early
    assert sent == ["", ""] and calls[0].name == "f"
    sent, (rest, calls) = run(["Hello", " <to", "p> world"])  # '<to' might have begun a call: held, then sent
    assert sent == ["Hello", "", " <top> world"] and (rest, calls) == ("", [])
    assert run(['{"a": 1}']) == ([""], ('{"a": 1}', []))  # JSON that is no call: all of it at the end


def test_evaluation_renders_the_tools_and_the_metric_scores_the_call(trained, registry):
    """The run's evaluation path: each example's tools reach the prompt (as in training), the answers are
    parsed by the tool_calls metric."""
    from ftframe.api import Example, TaskInfo
    from ftframe.engine.evaluate import predict
    from ftframe.engine.predict import LocalPredictor

    model, tok = trained
    task = TaskInfo("t", "generation")
    examples = [Example([*ASK_CALL, {"role": "assistant", "content": None, "tool_calls": [CALL]}], "t:1", tools=TOOLS),
                Example([*ASK_TEXT, {"role": "assistant", "content": "Hello there!"}], "t:2", tools=TOOLS)]
    preds = predict(LocalPredictor(model, tok, precision="fp32"), examples, task, mode="generate", max_new_tokens=200)
    assert preds[0].gold == '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Bonn"}}\n</tool_call>'
    res = registry.create("metric", "tool_calls", {}).compute(preds, task)
    assert res.values["tool_calls"] == 1.0 and res.details["matched_calls"] == 1
    assert preds[1].predicted == "Hello there!"


def test_a_predictor_that_cannot_take_tools_is_refused():
    from ftframe.api import Example, TaskInfo
    from ftframe.engine.evaluate import predict
    from ftframe.errors import ConfigError

    class TextOnly:  # a predictor whose generate has no `tools` (e.g. an endpoint adapter)
        name = "text-only"

        def generate(self, prompts, *, max_new_tokens, progress=None):
            return ["x" for _ in prompts]

    examples = [Example([*ASK_CALL, {"role": "assistant", "content": None, "tool_calls": [CALL]}], tools=TOOLS)]
    with pytest.raises(ConfigError, match="predictor 'text-only' cannot put tool definitions into its prompts"):
        predict(TextOnly(), examples, TaskInfo("t", "generation"), mode="generate", max_new_tokens=4)
    plain = [Example([*ASK_TEXT, {"role": "assistant", "content": "hi"}])]
    assert predict(TextOnly(), plain, TaskInfo("t", "generation"), mode="generate", max_new_tokens=4)[0].predicted == "x"
