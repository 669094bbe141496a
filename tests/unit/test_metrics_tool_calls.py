"""The tool-call parser (shared by the metric and ``ftframe serve``) and the ``tool_calls`` metric, on hand-made
predictions with hand-computed values."""

from __future__ import annotations

import json

import pytest

from ftframe.api import Example, Prediction, TaskInfo
from ftframe.tool_calls import canonical_arguments, openai_tool_calls, parse_tool_calls, reply_text

TASK = TaskInfo("t", "generation")


def block(name: str, arguments) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": arguments})}\n</tool_call>'


def gold_of(*calls: tuple[str, str], content=None) -> str:
    """The gold text of an assistant message with these OpenAI ``tool_calls`` (as evaluation makes it)."""
    msg = {"role": "assistant", "content": content, "tool_calls": [
        {"id": f"c{i}", "type": "function", "function": {"name": n, "arguments": a}} for i, (n, a) in enumerate(calls)]}
    return Example(messages=[{"role": "user", "content": "q"}, msg]).target


# -------------------------------------------------------------------------------------------- parser
def test_parser_reads_qwen_blocks_bare_json_and_leaves_answers_alone():
    two = parse_tool_calls("Let me check.\n" + block("weather", {"city": "Bonn"}) + "\n" + block("time", {}))
    assert two.content == "Let me check."
    assert [(c.name, c.arguments) for c in two.calls] == [("weather", {"city": "Bonn"}), ("time", {})]
    string_args = parse_tool_calls('<tool_call>{"name": "f", "arguments": "{\\"x\\": 1}"}</tool_call>')
    assert string_args.calls[0].arguments == {"x": 1}  # a JSON string of arguments is read as its object
    unclosed = parse_tool_calls('<tool_call>\n{"name": "f", "arguments": {"x": 1}}')  # cut before </tool_call>
    assert unclosed.calls[0].name == "f" and unclosed.content is None
    bare = parse_tool_calls('{"name": "f", "parameters": {"x": 1}}')  # Llama 3.1's JSON call
    assert [(c.name, c.arguments) for c in bare.calls] == [("f", {"x": 1})] and bare.content is None
    assert parse_tool_calls('[{"name": "f", "arguments": {}}, {"name": "g", "arguments": {}}]').calls[1].name == "g"
    for answer in ('{"name": "Ada"}', '{"name": "f", "arguments": {}, "age": 3}', "It is 7 degrees.", "{broken"):
        parsed = parse_tool_calls(answer)
        assert parsed.calls == [] and parsed.content == answer
    bad = parse_tool_calls("<tool_call>{not json}</tool_call><tool_call>{\"arguments\": {}}</tool_call>")
    assert bad.calls == [] and bad.malformed == ["{not json}", '{"arguments": {}}']


def test_arguments_normalise_key_order_and_string_form():
    assert canonical_arguments('{"b": 2, "a": [1, {"d": 0, "c": 1}]}') == canonical_arguments(
        {"a": [1, {"c": 1, "d": 0}], "b": 2}) == '{"a":[1,{"c":1,"d":0}],"b":2}'
    assert canonical_arguments({"a": 1}) != canonical_arguments({"a": 1.0})
    assert canonical_arguments({"a": "1"}) != canonical_arguments({"a": 1})


def test_gold_text_is_what_a_qwen_template_renders_and_parses_back():
    gold = gold_of(("weather", '{"city": "Bonn"}'), content="Checking.")
    assert gold == 'Checking.\n<tool_call>\n{"name": "weather", "arguments": {"city": "Bonn"}}\n</tool_call>'
    parsed = parse_tool_calls(gold)
    assert parsed.content == "Checking." and parsed.calls[0].key() == ("weather", '{"city":"Bonn"}')
    [wire] = openai_tool_calls(parsed.calls)
    assert wire["type"] == "function" and wire["id"].startswith("call_")
    assert wire["function"] == {"name": "weather", "arguments": '{"city": "Bonn"}'}
    # a plain answer stays its content
    assert Example(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "hi"}]).target == "hi"
    assert reply_text({"role": "assistant", "content": "", "tool_calls": []}) == ""


# -------------------------------------------------------------------------------------------- metric
def preds(pairs):
    return [Prediction(i, [{"role": "user", "content": f"q{i}"}], gold, predicted, source=f"f:{i}")
            for i, (gold, predicted) in enumerate(pairs)]


@pytest.fixture
def tool_calls(registry):
    return registry.create("metric", "tool_calls", {})


def test_hand_computed_cases(tool_calls):
    weather = gold_of(("weather", '{"city": "Bonn", "unit": "C"}'))
    p = preds([
        (weather, block("weather", {"unit": "C", "city": "Bonn"})),   # 0 right: other key order, same arguments
        (weather, block("weather", {"city": "Köln", "unit": "C"})),   # 1 right name, wrong arguments
        (weather, "It is probably cold."),                             # 2 missing call
        (weather, block("weather", {"city": "Bonn", "unit": "C"}) + block("time", {})),  # 3 one extra call
        (weather, "<tool_call>{weather: Bonn}</tool_call>"),           # 4 unparseable: no call
        ("Hello!", "Hi there."),                                       # 5 no call wanted, none made: right
        (gold_of(("a", "{}"), ("b", '{"x": 1}')), block("b", {"x": 1}) + block("a", {})),  # 6 two calls, any order
    ])
    res = tool_calls.compute(p, TASK)
    # exact: 0, 5, 6 -> 3/7; names: 0, 1, 5, 6 -> 4/7
    assert res.values["tool_calls"] == pytest.approx(3 / 7)
    assert res.values["tool_name_accuracy"] == pytest.approx(4 / 7)
    # calls: gold 1+1+1+1+1+0+2 = 7, predicted 1+1+0+2+0+0+2 = 6, matched 1+0+0+1+0+0+2 = 4
    assert res.details["gold_calls"] == 7 and res.details["predicted_calls"] == 6 and res.details["matched_calls"] == 4
    assert res.values["tool_call_precision"] == pytest.approx(4 / 6)
    assert res.values["tool_call_recall"] == pytest.approx(4 / 7)
    assert res.values["tool_call_f1"] == pytest.approx(2 * 4 / (2 * 4 + 2 + 3))
    assert res.details["malformed"] == 1 and res.details["examples_with_gold_calls"] == 6
    assert [m["source"] for m in res.details["mismatch_examples"]] == ["f:1", "f:2", "f:3", "f:4"]
    assert res.details["mismatch_examples"][3]["malformed"] == ["{weather: Bonn}"]
    assert res.details["per_function"] == {"a": {"gold": 1, "exact": 1}, "b": {"gold": 1, "exact": 1},
                                           "weather": {"gold": 5, "exact": 2}}


def test_no_predictions_and_a_perfect_run(tool_calls):
    assert tool_calls.compute([], TASK).values["tool_calls"] == 0.0
    gold = gold_of(("f", '{"q": "x"}'))
    res = tool_calls.compute(preds([(gold, gold), ("text", "text")]), TASK)
    assert res.values == {"tool_calls": 1.0, "tool_name_accuracy": 1.0, "tool_call_precision": 1.0,
                          "tool_call_recall": 1.0, "tool_call_f1": 1.0}
