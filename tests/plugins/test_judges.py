"""Judges: the human-labels file (good and bad rows), and the llm / loglik judges on the tiny model."""

from __future__ import annotations

import json

import pytest

from ftframe.api import MetricContext, Prediction, TaskInfo, Verdict
from ftframe.errors import ConfigError, DataError, NoVerdict

Q = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is my parcel?"}]


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def good_rows():
    return [json.dumps({"prompt": "Where is my parcel?", "a": "It ships today.", "b": "No idea.", "winner": "a",
                        "reason": "answers the question", "annotator": "ann1"}),
            json.dumps({"prompt": Q, "a": "Tracking: 123", "b": "It ships today.", "winner": "TIE"})]


def test_human_labels_lookup_mirrored_and_missing(registry, tmp_path):
    path = write_lines(tmp_path / "v.jsonl", good_rows())
    judge = registry.create("judge", "human_labels", {"path": str(path)})
    v = judge.judge(Q, "It ships today.", " No idea. ")
    assert v == Verdict("a", f"ann1: answers the question ({path}:1)")
    mirrored = judge.judge(Q, "No idea.", "It ships today.")
    assert mirrored.winner == "b" and "labelled in the other order" in mirrored.reason
    assert judge.judge(Q, "Tracking: 123", "It ships today.").winner == "tie"
    with pytest.raises(NoVerdict, match="no verdict for this pair"):
        judge.judge(Q, "It ships today.", "Something else")
    assert judge.judge_batch([(Q, "It ships today.", "No idea."), (Q, "x", "y")])[1] is None


def test_human_labels_bad_rows(registry, tmp_path):
    bad = ["{not json", json.dumps(["a", "list"]), json.dumps({"prompt": "p", "a": "x", "winner": "a"}),
           json.dumps({"prompt": "p", "a": "x", "b": "y", "winner": "left"}),
           json.dumps({"prompt": "p", "a": 1, "b": "y", "winner": "a"}),
           json.dumps({"prompt": 5, "a": "x", "b": "y", "winner": "a"}),
           json.dumps({"prompt": "Where is my parcel?", "a": "It ships today.", "b": "No idea.", "winner": "b"})]
    path = write_lines(tmp_path / "v.jsonl", good_rows() + bad)
    with pytest.raises(DataError, match=r"v.jsonl:3: not valid JSON.*on_error=skip"):
        registry.create("judge", "human_labels", {"path": str(path)})
    judge = registry.create("judge", "human_labels", {"path": str(path), "on_error": "skip"})
    reasons = {r.source.rsplit(":", 1)[1]: r.reason for r in judge.rejected}
    assert set(reasons) == {"3", "4", "5", "6", "7", "8", "9"}
    assert reasons["4"].startswith("expected an object")
    assert reasons["5"] == "missing b"
    assert "'left' is not one of a, b, tie" in reasons["6"]
    assert "must be strings" in reasons["7"]
    assert "prompt must be" in reasons["8"]
    assert reasons["9"].startswith("contradicts the verdict 'a' for the same pair at") and reasons["9"].endswith(":1")
    assert len(judge.verdicts) == 2  # the good rows still count


def test_human_labels_csv_and_unusable_files(registry, tmp_path):
    csv_path = tmp_path / "v.csv"
    csv_path.write_text('prompt,a,b,winner,reason\n"Where is my parcel?","x, with comma",y,b,y is right\n',
                        encoding="utf-8")
    judge = registry.create("judge", "human_labels", {"path": str(csv_path)})
    assert judge.judge(Q, "x, with comma", "y") == Verdict("b", f"y is right ({csv_path}:2)")
    with pytest.raises(DataError, match="file not found"):
        registry.create("judge", "human_labels", {"path": str(tmp_path / "nope.jsonl")})
    empty = write_lines(tmp_path / "e.jsonl", [json.dumps({"prompt": "p", "winner": "a"})])
    with pytest.raises(DataError, match="no usable verdicts.*missing a, b"):
        registry.create("judge", "human_labels", {"path": str(empty), "on_error": "skip"})
    with pytest.raises(ConfigError, match="on_error"):
        registry.create("judge", "human_labels", {"path": str(empty), "on_error": "ignore"})


def test_human_labels_drive_the_preference_metric(registry, tmp_path):
    path = write_lines(tmp_path / "v.jsonl", good_rows())
    tuned = [Prediction(0, Q, None, "It ships today."), Prediction(1, [{"role": "user", "content": "other"}], None, "a")]
    base = [Prediction(0, Q, None, "No idea."), Prediction(1, [{"role": "user", "content": "other"}], None, "b")]
    metric = registry.create("metric", "preference", {"judge": "human_labels", "judge_options": {"path": str(path)}})
    res = metric.compute(tuned, TaskInfo("t", "generation"), MetricContext(tmp_path, "", base, registry))
    assert res.values["preference"] == 1.0 and res.details["unjudged"] == 1
    assert res.values["preference_position_consistency"] == 1.0
    with pytest.raises(ConfigError, match="metrics.preference.judge_options"):
        registry.create("metric", "preference", {"judge": "human_labels", "judge_options": {"paht": "x"}}) \
            .compute(tuned, TaskInfo("t", "generation"), MetricContext(tmp_path, "", base, registry))


@pytest.fixture(scope="module")
def model_options(tiny_model_dir):
    return {"model": "hf_local", "model_options": {"path": str(tiny_model_dir)}, "dtype": "fp32"}


def test_loglik_judge_prefers_the_likelier_answer(registry, model_options):
    judge = registry.create("judge", "loglik", model_options)
    judge.prepare(registry)
    prompt = [{"role": "user", "content": "where is my parcel"}]
    (la, na), (lb, nb) = judge.predictor.loglik([prompt, prompt], ["shipping", "zzzz qqqq"])
    verdict = judge.judge(prompt, "shipping", "zzzz qqqq")
    assert verdict.winner == ("a" if la / na > lb / nb else "b")
    assert "mean log-prob per token" in verdict.reason and f"({na} tokens)" in verdict.reason
    swapped = judge.judge(prompt, "zzzz qqqq", "shipping")
    assert swapped.winner == {"a": "b", "b": "a"}[verdict.winner]  # no position effect
    tie = registry.create("judge", "loglik", {**model_options, "tie_margin": 1e9})
    tie.prepare(registry)
    assert tie.judge(prompt, "shipping", "zzzz qqqq").winner == "tie"


def test_llm_judge_scores_the_choices_with_a_rubric(registry, model_options):
    judge = registry.create("judge", "llm", {**model_options, "rubric": "Q: {request}\nA: {a}\nB: {b}\nBetter?"})
    judge.prepare(registry)
    items = [(Q, "It ships today.", "No idea."), (Q, "No idea.", "It ships today.")]
    verdicts = judge.judge_batch(items)
    expected_prompt = [{"role": "user", "content": "Q: system: Be brief.\nuser: Where is my parcel?\nA: It ships "
                                                   "today.\nB: No idea.\nBetter?"}]
    [row] = judge.predictor.score([expected_prompt], ["A", "B", "tie"])
    best = ["a", "b", "tie"][max(range(3), key=row.__getitem__)]
    assert verdicts[0].winner == best
    assert verdicts[0].reason.startswith("log-likelihood of each choice: A ")
    no_tie = registry.create("judge", "llm", {**model_options, "allow_tie": False})
    no_tie.prepare(registry)
    assert all(v.winner in ("a", "b") for v in no_tie.judge_batch(items))
    gen = registry.create("judge", "llm", {**model_options, "method": "generate", "max_new_tokens": 3})
    gen.prepare(registry)
    for v in gen.judge_batch(items):  # a random tiny model rarely says A/B/tie: then there is no verdict
        assert v is None or v.winner in ("a", "b", "tie")
    with pytest.raises(ConfigError, match=r"must contain \{b\}"):
        registry.create("judge", "llm", {"rubric": "{request} {a}"})
