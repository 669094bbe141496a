"""The alpaca and sharegpt data formats, on LLaMA-Factory's own demo files and on broken input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ftframe_formats.alpaca import Alpaca, AlpacaConfig
from ftframe_formats.chat_jsonl import problem
from ftframe_formats.sharegpt import ShareGPT, ShareGPTConfig

from ftframe.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def lf_data(repo_root) -> Path:
    folder = repo_root.parent / "shared" / "datasets" / "llamafactory_data"
    if not folder.is_dir():
        pytest.skip(f"LLaMA-Factory demo data not found at {folder}")
    return folder


def _canonical(examples) -> None:
    bad = [(ex.source, why) for ex in examples if (why := problem(ex.to_record()))]
    assert not bad, bad[:3]


def _write(path: Path, records, *, jsonl: bool = False) -> Path:
    if jsonl:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    else:
        path.write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ real files
@pytest.mark.parametrize("name", ["alpaca_en_demo.json", "alpaca_zh_demo.json", "identity.json"])
def test_llamafactory_alpaca_files_load(lf_data, name):
    path = lf_data / name
    data = Alpaca(AlpacaConfig(path=str(path))).load()
    records = json.loads(path.read_text(encoding="utf-8"))
    assert not data.rejected
    assert len(data.examples) == len(records)
    assert data.files == [path]
    _canonical(data.examples)
    first, ex = records[0], data.examples[0]
    assert ex.source == f"{path}:record 1"
    assert ex.messages[-1] == {"role": "assistant", "content": first["output"]}
    assert ex.messages[-2]["content"].startswith(first["instruction"])
    with_input = next(i for i, r in enumerate(records) if r.get("input")) if any(r.get("input") for r in records) else None
    if with_input is not None:
        r = records[with_input]
        assert data.examples[with_input].messages[-2]["content"] == f"{r['instruction']}\n\n{r['input']}"


def test_glaive_toolcall_loads_with_tools_and_tool_calls(lf_data):
    path = lf_data / "glaive_toolcall_en_demo.json"
    data = ShareGPT(ShareGPTConfig(path=str(path))).load()
    records = json.loads(path.read_text(encoding="utf-8"))
    assert not data.rejected
    assert len(data.examples) == len(records)
    _canonical(data.examples)
    assert all(any(m["role"] == "assistant" for m in ex.messages) for ex in data.examples)
    with_tools = [ex for ex in data.examples if ex.tools]
    assert with_tools and all(t["type"] == "function" and t["function"]["name"] for ex in with_tools for t in ex.tools)
    calls = [m for ex in data.examples for m in ex.messages if m.get("tool_calls")]
    assert calls
    for ex in data.examples:
        ids = [c["id"] for m in ex.messages for c in m.get("tool_calls", [])]
        answered = [m["tool_call_id"] for m in ex.messages if m["role"] == "tool"]
        assert answered == ids
        for m in ex.messages:
            for c in m.get("tool_calls", []):
                assert m["content"] is None and c["type"] == "function"
                assert isinstance(json.loads(c["function"]["arguments"]), dict)


def test_alpaca_examples_render_with_trained_tokens(lf_data, tmp_path):
    from transformers import AutoTokenizer

    from ftframe.engine.chat import encode
    from ftframe.testing import tiny_tokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer(tmp_path / "tok"))
    data = Alpaca(AlpacaConfig(path=str(lf_data / "alpaca_en_demo.json"))).load()
    for ex in data.examples[:5]:
        enc = encode(tok, ex.messages)
        assert any(label != -100 for label in enc.labels)
        assert any(label == -100 for label in enc.labels)


# ------------------------------------------------------------------------------------- alpaca
def test_alpaca_jsonl_system_history_and_default_system(tmp_path):
    path = _write(tmp_path / "a.jsonl", [
        {"instruction": "Add", "input": "2 and 3", "output": "5", "system": "Be terse.",
         "history": [["hi", "hello"]], "extra": 1},
        {"instruction": "Name a colour", "output": "Red"},
    ], jsonl=True)
    data = Alpaca(AlpacaConfig(path=str(path), default_system="You help.")).load()
    assert [ex.source for ex in data.examples] == [f"{path}:1", f"{path}:2"]
    assert data.examples[0].messages == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "Add\n\n2 and 3"}, {"role": "assistant", "content": "5"},
    ]
    assert data.examples[1].messages[0] == {"role": "system", "content": "You help."}
    _canonical(data.examples)


def test_alpaca_custom_keys(tmp_path):
    path = _write(tmp_path / "a.json", [{"prompt": "Q", "query": "", "response": "A"}])
    cfg = AlpacaConfig(path=str(path), instruction="prompt", input="query", output="response")
    assert Alpaca(cfg).load().examples[0].messages == [{"role": "user", "content": "Q"},
                                                        {"role": "assistant", "content": "A"}]


def test_alpaca_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]\n')
    with pytest.raises(DataError, match=r"bad\.json:3: malformed JSON"):
        Alpaca(AlpacaConfig(path=str(path))).load()


def test_alpaca_malformed_jsonl_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n{"instruction": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: malformed JSON.*on_error=skip"):
        Alpaca(AlpacaConfig(path=str(path))).load()


def test_alpaca_missing_output_is_located(tmp_path):
    path = _write(tmp_path / "a.json", [{"instruction": "a", "output": "b"}, {"instruction": "c", "input": ""}])
    with pytest.raises(DataError, match=r"a\.json:record 2: missing 'output'"):
        Alpaca(AlpacaConfig(path=str(path))).load()


def test_alpaca_skip_keeps_good_records_and_lists_rejected(tmp_path):
    path = _write(tmp_path / "a.json", [
        {"instruction": "ok", "output": "fine"},
        {"instruction": "", "output": "x"},
        "not an object",
        {"instruction": "q", "output": 3},
        {"instruction": "q", "output": "a", "history": [["only one"]]},
        {"instruction": "q", "output": "a", "input": ["x"]},
        {"instruction": "also ok", "input": "more", "output": "good"},
    ])
    data = Alpaca(AlpacaConfig(path=str(path), on_error="skip")).load()
    assert [ex.source for ex in data.examples] == [f"{path}:record 1", f"{path}:record 7"]
    assert [(r.source, r.reason) for r in data.rejected] == [
        (f"{path}:record 2", "empty 'instruction'"),
        (f"{path}:record 3", "expected a JSON object, got str"),
        (f"{path}:record 4", "'output' must be a string, got int"),
        (f"{path}:record 5", "'history' item 0: expected a [user, assistant] pair of strings, got ['only one']"),
        (f"{path}:record 6", "'input' must be a string, got list"),
    ]
    assert data.rejected[0].raw == {"instruction": "", "output": "x"}


def test_missing_file_is_a_data_error(tmp_path):
    for plugin in (Alpaca(AlpacaConfig(path=str(tmp_path / "nope.json"))),
                   ShareGPT(ShareGPTConfig(path=str(tmp_path / "nope.json")))):
        with pytest.raises(DataError, match=r"nope\.json: file not found"):
            plugin.load()


def test_config_validation():
    with pytest.raises(ConfigError, match="on_error"):
        AlpacaConfig(path="x", on_error="ignore")
    with pytest.raises(ConfigError, match="encoding"):
        ShareGPTConfig(path="x", encoding="nope")
    with pytest.raises(ConfigError, match="role tags must differ"):
        ShareGPTConfig(path="x", user_tag="gpt")


# ----------------------------------------------------------------------------------- sharegpt
def _conv(*turns, **extra):
    return {"conversations": [{"from": f, "value": v} for f, v in turns], **extra}


def test_sharegpt_system_tools_and_calls(tmp_path):
    call = json.dumps({"name": "add", "arguments": {"a": 1, "b": 2}})
    path = _write(tmp_path / "s.jsonl", [
        _conv(("human", "1+2?"), ("function_call", call), ("observation", "3"), ("gpt", "It is 3."),
              system="Use tools.", tools=json.dumps([{"name": "add", "parameters": {"type": "object"}}])),
        _conv(("system", "Sys"), ("human", "hi"), ("gpt", "hello"),
              tools=[{"type": "function", "function": {"name": "f"}}]),
        _conv(("human", "x"), ("function_call", "not json"), ("observation", "y"), ("gpt", "z"), tools="[]"),
    ], jsonl=True)
    data = ShareGPT(ShareGPTConfig(path=str(path))).load()
    first, second, third = data.examples
    assert first.source == f"{path}:1"
    assert first.tools == [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    assert first.messages == [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "1+2?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}]},
        {"role": "tool", "content": "3", "tool_call_id": "call_0"},
        {"role": "assistant", "content": "It is 3."},
    ]
    assert second.tools == [{"type": "function", "function": {"name": "f"}}]
    assert second.messages[0] == {"role": "system", "content": "Sys"}
    assert third.tools is None  # "[]" means no tools
    assert third.messages[1] == {"role": "assistant", "content": "not json"}  # an unparsable call stays text
    assert third.messages[2] == {"role": "tool", "content": "y"}  # answering no parsed call id
    _canonical(data.examples)


def test_sharegpt_unknown_role_tag(tmp_path):
    path = _write(tmp_path / "s.json", [_conv(("human", "hi"), ("bot", "hello"))])
    with pytest.raises(DataError, match=r"s\.json:record 1: conversations\[1\]: unknown role tag 'bot'.*user_tag"):
        ShareGPT(ShareGPTConfig(path=str(path))).load()


def test_sharegpt_custom_keys_and_tags(tmp_path):
    path = _write(tmp_path / "s.json", [{"messages": [{"role": "user", "content": "hi"},
                                                      {"role": "assistant", "content": "yo"}]}])
    cfg = ShareGPTConfig(path=str(path), messages_key="messages", role_key="role", content_key="content",
                         user_tag="user", assistant_tag="assistant")
    assert ShareGPT(cfg).load().examples[0].messages == [{"role": "user", "content": "hi"},
                                                         {"role": "assistant", "content": "yo"}]


def test_sharegpt_skip_keeps_good_records_and_lists_rejected(tmp_path):
    path = _write(tmp_path / "s.json", [
        _conv(("human", "hi"), ("gpt", "hello")),
        _conv(),
        _conv(("human", "hi")),
        _conv(("human", "hi"), ("gpt", "hello"), tools="[{broken"),
        _conv(("human", "hi"), ("observation", "3"), ("gpt", "ok")),
        _conv(("human", "hi"), ("gpt", "  ")),
        {"conversations": [{"from": "human", "value": 5}, {"from": "gpt", "value": "x"}]},
        _conv(("human", "hi"), ("gpt", "ok"), tools=[{"description": "no name"}]),
        _conv(("human", "bye"), ("gpt", "see you")),
    ])
    data = ShareGPT(ShareGPTConfig(path=str(path), on_error="skip")).load()
    assert [ex.source for ex in data.examples] == [f"{path}:record 1", f"{path}:record 9"]
    reasons = {r.source.rsplit(":", 1)[1]: r.reason for r in data.rejected}
    assert list(reasons) == [f"record {n}" for n in range(2, 9)]
    assert reasons["record 2"] == "missing or empty 'conversations' list"
    assert reasons["record 3"].startswith("no 'gpt' or 'function_call' turn")
    assert reasons["record 4"].startswith("malformed 'tools' JSON")
    assert "does not follow a 'function_call'" in reasons["record 5"]
    assert reasons["record 6"] == "conversations[1]: empty assistant reply"
    assert reasons["record 7"] == "conversations[0]: 'value' must be a string, got int"
    assert reasons["record 8"].startswith("'tools' item 0: expected a function definition")
    assert all(r.raw is not None for r in data.rejected)
