"""The preference metric: position swapping, ties, bootstrap CI, audit file, Bradley–Terry, other runs' files.

The judges here are real ``Judge`` plugins registered in process (deterministic rules), so the metric
is exercised through the registry exactly as a run uses it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest

from ftframe import hookimpl
from ftframe.api import Judge, MetricContext, Prediction, TaskInfo, Verdict
from ftframe.errors import ConfigError, DataError, NoVerdict
from ftframe.plugins import Registry
from ftframe.testing import plugin_manager
from ftframe_metrics.preference import bootstrap_ci, bradley_terry, pair_score

TASK = TaskInfo("t", "generation")


class FirstPosition(Judge):
    """Always prefers whatever is shown first: pure position bias."""

    name = "first_position"

    def judge(self, prompt, a, b):
        return Verdict("a", "first one shown")


@dataclass
class KeywordConfig:
    word: str = "good"


class Keyword(Judge):
    """Prefers the answer containing the keyword; tie when both or neither do; no verdict on 'skip'."""

    name = "keyword"
    Config = KeywordConfig

    def judge(self, prompt, a, b):
        if "skip" in a or "skip" in b:
            raise NoVerdict("not labelled")
        ha, hb = self.config.word in a, self.config.word in b
        return Verdict("tie" if ha == hb else "a" if ha else "b", f"keyword in a={ha} b={hb}")


class Judges:
    @hookimpl
    def ftframe_judges(self):
        return [FirstPosition, Keyword]


@pytest.fixture(scope="module")
def reg():
    return Registry(plugin_manager(Judges()))


def answers(texts):
    return [Prediction(i, [{"role": "user", "content": f"question {i}"}], None, t, source=f"f:{i}")
            for i, t in enumerate(texts)]


def metric(reg, **opts):
    return reg.create("metric", "preference", opts)


def test_pair_score_and_bootstrap():
    a, b, tie = Verdict("a"), Verdict("b"), Verdict("tie")
    assert pair_score(a, b) == 1.0 and pair_score(b, a) == 0.0      # consistent in both orders
    assert pair_score(a, a) == 0.5 and pair_score(tie, tie) == 0.5  # position bias cancels to a tie
    assert pair_score(a, None) == 1.0 and pair_score(None, None) is None
    low, high = bootstrap_ci([1.0] * 10, confidence=0.95, resamples=500, seed=0)
    assert low == high == 1.0
    scores = [1.0] * 30 + [0.0] * 10
    low, high = bootstrap_ci(scores, confidence=0.95, resamples=2000, seed=0)
    assert low < 0.75 < high and 0.55 < low and high < 0.9
    assert bootstrap_ci(scores, confidence=0.95, resamples=2000, seed=0) == (low, high)  # seeded


def test_position_bias_is_cancelled_by_swapping(reg, tmp_path):
    tuned, base = answers(["x1", "x2", "x3", "x4"]), answers(["y1", "y2", "y3", "y4"])
    res = metric(reg, judge="first_position").compute(tuned, TASK, MetricContext(tmp_path, "", base, reg))
    assert res.values["preference"] == 0.5 and res.values["preference_tie"] == 1.0
    assert res.values["preference_position_consistency"] == 0.0
    assert res.details["first_position_preferred"] == 1.0
    no_swap = metric(reg, judge="first_position", swap=False).compute(tuned, TASK,
                                                                       MetricContext(None, "", base, reg))
    assert no_swap.values["preference"] == 1.0  # without swapping the bias decides everything
    assert "preference_position_consistency" not in no_swap.values


def test_win_rate_ties_ci_and_audit(reg, tmp_path):
    tuned = answers(["good a", "good b", "good c", "meh", "same", "good and skip"])
    base = answers(["bad", "bad", "good too", "good d", "same", "x"])
    ctx = MetricContext(run_dir=tmp_path, prefix="golden_", baseline=base, registry=reg)
    res = metric(reg, judge="keyword", bootstrap=500).compute(tuned, TASK, ctx)
    #  wins: 0, 1; tie: 2 (both good), 4 (identical); loss: 3; 5 unjudged (no verdict in either order)
    v = res.values
    assert res.details["unjudged"] == 1 and (res.details["wins"], res.details["ties"], res.details["losses"]) == (2, 2, 1)
    assert v["preference"] == pytest.approx((2 + 0.5 * 2) / 5)
    assert v["preference_win"] == pytest.approx(2 / 5) and v["preference_loss"] == pytest.approx(1 / 5)
    assert v["preference_ci_low"] <= v["preference"] <= v["preference_ci_high"]
    assert v["preference_position_consistency"] == 1.0
    assert "percentile bootstrap" in res.details["ci"]
    rows = [json.loads(line) for line in (tmp_path / "golden_judgements.jsonl").read_text().splitlines()]
    # 4 differing judged pairs x 2 orders + 2 orders of the unjudged pair + 1 identical pair
    assert len(rows) == 11
    identical = [r for r in rows if r["judge"] is None]
    assert identical == [{"example": 4, "source": "f:4", "a_system": "tuned", "b_system": "baseline", "a": "same",
                          "b": "same", "winner": "tie", "winner_system": "tie",
                          "reason": "identical answers (not sent to the judge)", "judge": None}]
    swapped = [r for r in rows if r["example"] == 0 and r["a_system"] == "baseline"]
    assert swapped[0]["winner"] == "b" and swapped[0]["winner_system"] == "tuned"
    assert swapped[0]["reason"] == "keyword in a=False b=True"
    assert all(r["reason"] for r in rows)


def test_baseline_from_another_runs_predictions(reg, tmp_path):
    run = tmp_path / "other_run"
    run.mkdir()
    base = answers(["bad", "good", "bad"])
    (run / "predictions.jsonl").write_text("".join(json.dumps(p.to_record()) + "\n" for p in reversed(base)))
    tuned = answers(["good", "good", "good"])
    res = metric(reg, judge="keyword", baseline=str(run)).compute(tuned, TASK, MetricContext(registry=reg))
    assert res.values["preference"] == pytest.approx((1 + 0.5 + 1) / 3)  # matched by prompt, not by order
    with pytest.raises(DataError, match="share no prompt"):
        other = answers(["a"])
        other[0].prompt = [{"role": "user", "content": "unrelated"}]
        metric(reg, judge="keyword", baseline=str(run)).compute(other, TASK, MetricContext(registry=reg))
    (run / "predictions.jsonl").write_text('{"index": 0}\n')
    with pytest.raises(DataError, match=r"predictions.jsonl:1: not a prediction record"):
        metric(reg, judge="keyword", baseline=str(run)).compute(tuned, TASK, MetricContext(registry=reg))


def test_nothing_to_compare(reg):
    m = metric(reg, judge="keyword")
    with pytest.raises(ConfigError, match="nothing to compare with"):
        m.compute(answers(["a"]), TASK, MetricContext(registry=reg))
    skipped = m.compute(answers(["a"]), TASK, MetricContext(prefix="baseline_", registry=reg))
    assert skipped.values == {} and "baseline" in skipped.details["skipped"]


def test_bradley_terry_recovers_an_order():
    # A beats B 8 of 10, B beats C 8 of 10, A beats C 9 of 10
    outcomes = ([("A", "B", 1.0)] * 8 + [("A", "B", 0.0)] * 2 + [("B", "C", 1.0)] * 8 + [("B", "C", 0.0)] * 2
                + [("A", "C", 1.0)] * 9 + [("A", "C", 0.0)])
    s = bradley_terry(["C", "B", "A"], outcomes, prior=0.0)
    assert s["A"] > s["B"] > s["C"]
    assert math.prod(s.values()) == pytest.approx(1.0)
    # the MM fixed point: each system's expected wins equal its observed wins
    observed = {"A": 17, "B": 10, "C": 3}
    games = {("A", "B"): 10, ("B", "C"): 10, ("A", "C"): 10}
    for x in s:
        expected = sum(n * s[x] / (s[x] + s[y if x == a else a])
                       for (a, y), n in games.items() if x in (a, y)
                       for y in [b for b in (a, y) if b != x])
        assert expected == pytest.approx(observed[x], rel=1e-4)
    # a system that never wins keeps a finite strength thanks to the prior
    assert bradley_terry(["X", "Y"], [("X", "Y", 1.0)] * 5)["Y"] > 0


def test_bradley_terry_ranking_of_more_systems(reg, tmp_path):
    def save(name, texts):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(p.to_record()) + "\n" for p in answers(texts)))
        return str(path)

    tuned = answers(["good", "good", "good", "good"])
    base = answers(["bad", "bad", "bad", "good"])
    systems = {"mid": save("mid", ["good", "good", "bad", "bad"]), "worst": save("worst", ["bad"] * 4)}
    res = metric(reg, judge="keyword", systems=systems).compute(tuned, TASK, MetricContext(tmp_path, "", base, reg))
    ranking = [r["system"] for r in res.details["bradley_terry"]]
    assert ranking[0] == "tuned" and ranking[-1] == "worst"
    assert [r["rank"] for r in res.details["bradley_terry"]] == [1, 2, 3, 4]
    assert res.values["preference"] == pytest.approx((3 + 0.5) / 4)  # the headline stays tuned vs baseline
    rows = [json.loads(line) for line in (tmp_path / "judgements.jsonl").read_text().splitlines()]
    assert {frozenset((r["a_system"], r["b_system"])) for r in rows} == {
        frozenset(p) for p in [("tuned", "baseline"), ("tuned", "mid"), ("tuned", "worst"), ("baseline", "mid"),
                               ("baseline", "worst"), ("mid", "worst")]}
    with pytest.raises(ConfigError, match="reserved"):
        metric(reg, systems={"tuned": "x"})
