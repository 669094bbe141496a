"""Structured-output metrics on hand-made predictions with known values, and on real Restaurant-8k data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftframe.api import Prediction, TaskInfo
from ftframe.errors import ConfigError

TASK = TaskInfo("t", "generation")
RESTAURANT = Path("/work/shared/datasets/restaurant8k/restaurant8k_test_extraction.jsonl")


def preds(pairs):
    return [Prediction(i, [{"role": "user", "content": f"q{i}"}], gold, predicted, source=f"f:{i}")
            for i, (gold, predicted) in enumerate(pairs)]


@pytest.fixture
def metric(registry):
    return lambda name, **opts: registry.create("metric", name, opts)


def test_exact_match_normalises_key_order_and_whitespace(metric):
    p = preds([('{"a": 1, "b": [1, 2]}', '{ "b":[1,2],\n "a":1 }'),    # same JSON, other order/spacing
               ('{"a": 1}', '{"a": 1.0}'),                             # 1 and 1.0 are different
               ('{"a": "1"}', '{"a": 1}'),                             # a string is not a number
               ('{"name": "Müller"}', '{"name": "M\\u00fcller"}'),      # escapes decode to the same text
               ("plain answer", "  plain answer \n"),                  # not JSON: stripped strings
               ('{"a": 1}', "sure! {\"a\": 1}")])                      # prose around JSON is not JSON
    res = metric("exact_match").compute(p, TASK)
    assert res.values["exact_match"] == pytest.approx(3 / 6)
    assert res.details["matches"] == 3
    assert res.details["string_fallback"] == 2
    assert [m["source"] for m in res.details["mismatch_examples"]] == ["f:1", "f:2", "f:5"]


def test_exact_match_edge_cases(metric):
    m = metric("exact_match")
    assert m.compute([], TASK).values == {"exact_match": 0.0}
    assert m.compute(preds([("{}", "nope"), ("[1]", "")]), TASK).values == {"exact_match": 0.0}
    fenced = preds([('{"a": 1}', '```json\n{"a": 1}\n```')])
    assert m.compute(fenced, TASK).values["exact_match"] == 0.0
    assert metric("exact_match", strip_code_fences=True).compute(fenced, TASK).values["exact_match"] == 1.0


def test_field_f1_counts_key_path_value_pairs(metric):
    #  ex0: gold {a:1, b:{c:2, d:3}}  pred {a:1, b:{c:2, d:4}, e:5} -> tp a, b.c ; fp b.d=4, e ; fn b.d=3
    #  ex1: gold {x:[1,2]}            pred {x:[2,1]}                -> lists are order-free: tp 2
    #  ex2: gold {a:1}                pred not JSON                 -> fn a
    #  ex3: gold {}                   pred {}                       -> the empty object is one matching pair
    p = preds([('{"a": 1, "b": {"c": 2, "d": 3}}', '{"a": 1, "b": {"c": 2, "d": 4}, "e": 5}'),
               ('{"x": [1, 2]}', '{"x": [2, 1]}'),
               ('{"a": 1}', "I could not find it"),
               ("{}", "{}")])
    res = metric("field_f1").compute(p, TASK)
    tp, fp, fn = 5, 2, 2
    assert (res.details["tp"], res.details["fp"], res.details["fn"]) == (tp, fp, fn)
    assert res.values["field_precision"] == pytest.approx(tp / (tp + fp))
    assert res.values["field_recall"] == pytest.approx(tp / (tp + fn))
    assert res.values["field_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    per = res.details["per_field"]
    assert per["$.a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3, abs=1e-4), "support": 2}
    assert per["$.x[]"]["f1"] == 1.0 and per["$.x[]"]["support"] == 2
    assert per["$.e"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_field_f1_edge_cases(metric):
    m = metric("field_f1")
    assert m.compute([], TASK).values["field_f1"] == 1.0  # nothing expected, nothing predicted
    res = m.compute(preds([('{"a": 1}', "x"), ('{"b": 2}', "")]), TASK)
    assert res.values["field_f1"] == 0.0 and res.details["fn"] == 2
    # duplicated values in a list are counted with multiplicity
    res = m.compute(preds([('{"t": ["x", "x"]}', '{"t": ["x"]}')]), TASK)
    assert (res.details["tp"], res.details["fn"]) == (1, 1)


def test_json_valid(metric):
    p = preds([("", '{"a": 1}'), ("", "[1, 2]"), ("", "null"), ("", "{'a': 1}"), ("", ""), ("", "text")])
    res = metric("json_valid").compute(p, TASK)
    assert res.values["json_valid"] == pytest.approx(3 / 6)
    assert res.details["invalid"] == 3
    assert metric("json_valid").compute([], TASK).values["json_valid"] == 0.0
    assert metric("json_valid").compute(preds([("", "no"), ("", "{")]), TASK).values["json_valid"] == 0.0


SCHEMA = {"type": "object", "required": ["intent"], "additionalProperties": False,
          "properties": {"intent": {"enum": ["refund", "delivery"]}, "order_id": {"type": "string"}}}


def test_json_schema_inline_and_from_file(metric, tmp_path):
    p = preds([("", '{"intent": "refund"}'), ("", '{"intent": "refund", "order_id": "A1"}'),
               ("", '{"intent": "other"}'), ("", '{"order_id": 5}'), ("", "not json")])
    res = metric("json_schema", schema=SCHEMA).compute(p, TASK)
    assert res.values["json_schema"] == pytest.approx(2 / 5)
    errors = {f["source"]: f["errors"] for f in res.details["failure_examples"]}
    assert errors["f:4"] == ["not JSON"]
    assert any("'other' is not one of" in e for e in errors["f:2"])
    assert len(errors["f:3"]) == 2  # missing intent and order_id not a string
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(SCHEMA))
    assert metric("json_schema", schema_path=str(path)).compute(p, TASK).values == res.values
    from_task = metric("json_schema").compute(p, TaskInfo("t", "generation", output_schema=SCHEMA))
    assert from_task.values == res.values  # no schema of its own: the task's output schema


def test_json_schema_config_errors(metric, tmp_path):
    with pytest.raises(ConfigError, match="not both"):
        metric("json_schema", schema=SCHEMA, schema_path="x.json")
    with pytest.raises(ConfigError, match="set task.output_schema"):
        metric("json_schema").compute(preds([("", "{}")]), TASK)
    with pytest.raises(ConfigError, match="task.output_schema: not a valid JSON schema"):
        metric("json_schema").compute(preds([("", "{}")]), TaskInfo("t", "generation", output_schema={"type": 12}))
    with pytest.raises(ConfigError, match="not a valid JSON schema"):
        metric("json_schema", schema={"type": 12})
    bad = tmp_path / "s.json"
    bad.write_text("{oops")
    with pytest.raises(ConfigError, match=r"s.json:1: not valid JSON"):
        metric("json_schema", schema_path=str(bad))


@pytest.mark.skipif(not RESTAURANT.is_file(), reason="shared Restaurant-8k data not present")
def test_exact_match_on_restaurant8k(metric):
    """Real extraction targets: a re-serialised answer (other key order, spacing) matches, a changed slot
    does not, and the sorted-key gold strings are JSON objects (with {} for no slots)."""
    rows = [json.loads(line) for line in RESTAURANT.read_text(encoding="utf-8").splitlines()[:200]]
    golds = [r["target"] for r in rows]
    assert all(isinstance(json.loads(g), dict) for g in golds)
    reordered = [json.dumps(dict(reversed(list(json.loads(g).items()))), indent=1) for g in golds]
    assert sum(a != b for a, b in zip(golds, reordered)) > 50  # the strings really differ
    em = metric("exact_match")
    same = em.compute(preds(list(zip(golds, reordered))), TASK)
    assert same.values["exact_match"] == 1.0 and same.details["string_fallback"] == 0

    def damage(g: str) -> str:
        obj = json.loads(g)
        if not obj:
            return '{"people": "2"}'
        key = sorted(obj)[0]
        return json.dumps({**obj, key: obj[key] + "x"})

    broken = [damage(g) if i % 4 == 0 else g for i, g in enumerate(golds)]
    res = em.compute(preds(list(zip(golds, broken))), TASK)
    assert res.values["exact_match"] == pytest.approx(1 - len(range(0, 200, 4)) / 200)
    f1 = metric("field_f1").compute(preds(list(zip(golds, broken))), TASK)
    assert f1.details["fp"] == f1.details["fn"] == 50  # each damaged answer: one wrong pair, one missed
    assert 0.5 < f1.values["field_f1"] < 1.0
