"""slot_f1 against hand-computed counts: empty gold, empty prediction, partial spans, wrong slot names."""

from __future__ import annotations

import pytest

from ftframe.api import Prediction, TaskInfo
from ftframe.errors import ConfigError
from ftframe_metrics.slots import SlotF1, SlotF1Config

TASK = TaskInfo("restaurant8k", "generation")


def score(pairs, **options):
    preds = [Prediction(i, [], gold, pred) for i, (gold, pred) in enumerate(pairs)]
    return SlotF1(SlotF1Config(**options)).compute(preds, TASK)


def test_empty_gold_answered_empty_counts_nothing_and_is_reported_correct():
    res = score([("{}", "{}"), ('{"people": "4"}', '{"people": "4"}')])
    assert (res.details["tp"], res.details["fp"], res.details["fn"]) == (1, 0, 0)
    assert res.values["slot_f1"] == 1.0
    assert res.details["empty_gold"] == 1 and res.details["empty_correct"] == 1.0


def test_a_slot_predicted_where_the_gold_has_none_is_a_false_positive():
    res = score([("{}", '{"time": "7pm"}'), ('{"people": "4"}', '{"people": "4"}')])
    assert (res.details["tp"], res.details["fp"], res.details["fn"]) == (1, 1, 0)
    assert res.values["slot_precision"] == 0.5 and res.values["slot_recall"] == 1.0
    assert res.values["slot_f1"] == pytest.approx(2 / 3)
    assert res.details["empty_correct"] == 0.0


def test_an_empty_prediction_misses_every_gold_slot():
    res = score([('{"date": "Friday", "people": "2"}', "{}")])
    assert (res.details["tp"], res.details["fp"], res.details["fn"]) == (0, 0, 2)
    assert res.values["slot_f1"] == 0.0


def test_a_partial_or_longer_span_is_wrong_both_ways():
    gold = '{"date": "Sunday, December 30", "first_name": "Davina", "last_name": "Freedman"}'
    pred = '{"date": "on Sunday, December 30", "first_name": "Davina", "last_name": "Freed"}'
    res = score([(gold, pred)])
    # first_name right; date and last_name each one fp and one fn
    assert (res.details["tp"], res.details["fp"], res.details["fn"]) == (1, 2, 2)
    assert res.values["slot_f1"] == pytest.approx(2 * 1 / (2 * 1 + 2 + 2))
    assert res.details["per_slot"]["first_name"]["f1"] == 1.0
    assert res.details["per_slot"]["date"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_a_wrong_slot_name_is_a_false_positive_and_the_gold_slot_a_false_negative():
    res = score([('{"people": "5 adults"}', '{"guests": "5 adults"}')])
    assert (res.details["tp"], res.details["fp"], res.details["fn"]) == (0, 1, 1)
    assert set(res.details["per_slot"]) == {"guests", "people"}


def test_not_json_misses_everything_and_is_counted():
    res = score([('{"time": "6 a.m."}', "time: 6 a.m."), ('{"time": "6 a.m."}', '["6 a.m."]')])
    assert (res.details["tp"], res.details["fp"], res.details["fn"]) == (0, 0, 2)
    assert res.details["not_json_object"] == 2


def test_normalisation_whitespace_by_default_case_only_when_asked():
    pairs = [('{"time": "6 a.m."}', '{"time": "  6  a.m. "}'), ('{"first_name": "Davina"}', '{"first_name": "davina"}'),
             ('{"people": "4"}', '{"people": 4}')]
    default = score(pairs)
    assert default.details["tp"] == 2 and default.details["fp"] == 1  # case differs; the number matches "4"
    assert score(pairs, normalise="lower").values["slot_f1"] == 1.0
    assert score(pairs, normalise="exact").details["tp"] == 1  # only 4 == "4"


def test_a_list_is_never_a_span_and_nulls_are_absent():
    res = score([('{"people": "4"}', '{"people": ["4"], "date": null}')])
    assert (res.details["tp"], res.details["fp"], res.details["fn"]) == (0, 1, 1)


def test_a_bad_normalise_option_names_the_key():
    with pytest.raises(ConfigError, match="metrics.slot_f1.normalise"):
        SlotF1Config(normalise="fuzzy")
