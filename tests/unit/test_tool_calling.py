"""Training on tool conversations: a Qwen2.5-style tools template, the loss mask on tool-call tokens, templates
that drop tools found before training, OpenAI and ShareGPT (glaive) tool data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftframe.commands import main
from ftframe.engine.chat import encode, render, tool_rendering_problem
from ftframe.errors import DataError
from ftframe.preflight.format_checks import record_errors
from ftframe.testing import QWEN_TOOLS_TEMPLATE, run_tiny, tiny_run_overrides

GLAIVE = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "llamafactory_data" / \
    "glaive_toolcall_en_demo.json"
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Bonn"}'}}
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Bonn?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 7}'},
    {"role": "assistant", "content": "7 degrees in Bonn."},
]


@pytest.fixture(scope="module")
def tools_model_dir(tmp_path_factory) -> Path:
    from ftframe.testing import tiny_model

    return tiny_model(tmp_path_factory.mktemp("tools") / "model", chat_template=QWEN_TOOLS_TEMPLATE)


@pytest.fixture(scope="module")
def tools_tokenizer(tools_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tools_model_dir)


def trained_runs(tok, enc) -> list[str]:
    """The text of each contiguous run of trained positions."""
    runs, start = [], None
    for i, lab in enumerate([*enc.labels, -100]):
        if lab != -100 and start is None:
            start = i
        elif lab == -100 and start is not None:
            runs.append(tok.decode(enc.input_ids[start:i]))
            start = None
    return runs


def test_tools_template_renders_like_qwen25(tools_tokenizer):
    text = render(tools_tokenizer, CONVERSATION, tools=TOOLS)
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in text
    # the JSON-string arguments are rendered as the object they hold (not a quoted, escaped string)
    assert ('<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Bonn"}}\n'
            '</tool_call><|im_end|>\n') in text
    assert '<|im_start|>user\n<tool_response>\n{"temp_c": 7}\n</tool_response><|im_end|>\n' in text
    assert tool_rendering_problem(tools_tokenizer, CONVERSATION, TOOLS) is None


def test_loss_mask_trains_the_tool_call_and_not_the_tool_result(tools_tokenizer):
    tok = tools_tokenizer
    enc = encode(tok, CONVERSATION, tools=TOOLS)
    assert len(enc.labels) == len(enc.input_ids)
    assert trained_runs(tok, enc) == [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Bonn"}}\n</tool_call><|im_end|>',
        "7 degrees in Bonn.<|im_end|>"]
    untrained = tok.decode([t for t, lab in zip(enc.input_ids, enc.labels) if lab == -100])
    for text in ("Be brief.", "<tools>", "Weather in Bonn?", "<tool_response>", '{"temp_c": 7}'):
        assert text in untrained
    assert "get_weather\", \"arguments\"" not in untrained  # the call itself is nowhere masked
    # weight 0 on the call turn: only the final answer is trained
    weighted = [*CONVERSATION[:2], {**CONVERSATION[2], "weight": 0}, *CONVERSATION[3:]]
    assert trained_runs(tok, encode(tok, weighted, tools=TOOLS)) == ["7 degrees in Bonn.<|im_end|>"]


def test_a_template_without_tools_is_found_not_rendered(tiny_tokenizer):
    # the ChatML test template writes role and content only: tools, the call and nothing else crash; they vanish
    assert "get_weather" not in render(tiny_tokenizer, CONVERSATION, tools=TOOLS)
    assert "tool definitions are not rendered (the text is the same without them: get_weather" in tool_rendering_problem(tiny_tokenizer, CONVERSATION,
                                                                                       TOOLS)
    no_tools = tool_rendering_problem(tiny_tokenizer, CONVERSATION[1:3], None)
    assert no_tools == "message 1: the tool call get_weather(...) is not rendered (get_weather, city missing)"
    assert tool_rendering_problem(tiny_tokenizer, [CONVERSATION[1], CONVERSATION[4]], None) is None


@pytest.mark.parametrize(("record", "kind", "detail"), [
    ({"messages": [CONVERSATION[1], {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{city: Bonn}"}}]}]},
     "invalid_tool_call", "message 1: tool_calls: item 0 (f): 'arguments' is not valid JSON"),
    ({"messages": [CONVERSATION[1], {"role": "assistant", "tool_calls": [{"type": "function", "function": {}}]}]},
     "invalid_tool_call", "message 1: tool_calls: item 0: the function has no 'name'"),
    ({"messages": CONVERSATION[1:3], "tools": [{"name": "get_weather"}]}, "invalid_tools", "'tools' item 0"),
])
def test_malformed_tool_data_is_rejected_with_the_reason(record, kind, detail):
    [error] = record_errors(record)
    assert error.type == kind and error.detail.startswith(detail)


def test_openai_tool_conversation_passes_the_format_checks():
    assert record_errors({"messages": CONVERSATION, "tools": TOOLS}) == []


def check(tmp_path: Path, model_dir: Path, path: Path, capsys) -> tuple[int, dict, str]:
    code = main(["data", "check", "--no-measure", "--out", str(tmp_path / "pf"), str(path), "model=hf_local",
                 f"model.path={model_dir}", "task.type=generation"])
    return code, json.loads((tmp_path / "pf" / "preflight.json").read_text()), capsys.readouterr().out


def test_glaive_demo_checks_cleanly_with_a_tools_template(tmp_path, tools_model_dir, capsys):
    if not GLAIVE.exists():
        pytest.skip(f"{GLAIVE} is not available")
    code, report, _ = check(tmp_path, tools_model_dir, GLAIVE, capsys)
    assert code == 0
    assert report["format"] == "sharegpt" and report["examples"] == 300 and report["rejected"] == 0
    assert report["tools"]["examples"] > 150 and report["tools"]["not_rendered"] == 0
    assert not [p for p in report["problems"] if p["level"] == "error"]


def test_glaive_demo_with_a_template_that_drops_tools_is_an_error(tmp_path, tiny_model_dir, capsys):
    if not GLAIVE.exists():
        pytest.skip(f"{GLAIVE} is not available")
    code, report, out = check(tmp_path, tiny_model_dir, GLAIVE, capsys)  # it crashed in the template before
    assert code == 1
    assert report["tools"]["not_rendered"] == report["tools"]["examples"] > 150
    [problem] = [p for p in report["problems"] if "lose tool content" in p["message"]]
    assert problem["level"] == "error"
    assert f"chat template of hf_local:{tiny_model_dir}" in problem["message"]
    assert "glaive_toolcall_en_demo.json:record " in problem["message"]
    assert "use a model whose chat template renders tools" in problem["message"]
    assert "Traceback" not in out and "lose tool content" in " ".join(out.split())


def test_a_run_stops_before_training_when_the_template_drops_tool_calls(tmp_path, tiny_model_dir):
    data = tmp_path / "tools.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Weather in city {i}?"},
                          {"role": "assistant", "content": None, "tool_calls": [
                              {**CALL, "function": {"name": "get_weather", "arguments": json.dumps({"city": str(i)})}}]}],
             "tools": TOOLS} for i in range(8)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match="8 of 8 example.*lose tool content.*tools-aware chat_template.jinja"):
        run_tiny(tmp_path / "run", tiny_run_overrides(tiny_model_dir, data, **{"task.type": "generation"}))
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_data_show_marks_the_call_and_says_when_the_template_drops_it(tmp_path, tiny_model_dir, tools_model_dir,
                                                                      capsys):
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"messages": CONVERSATION, "tools": TOOLS}) + "\n", encoding="utf-8")
    show = ["data", "show", "--index", "0", str(data), "model=hf_local"]
    assert main([*show, f"model.path={tools_model_dir}"]) == 0
    out = capsys.readouterr().out
    assert "<tool_call>" in out and "drops tool content" not in out
    assert main([*show, f"model.path={tiny_model_dir}"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "error: the chat template of hf_local drops tool content: the tool definitions are not rendered" in out
