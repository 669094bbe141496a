"""Generation metrics (ROUGE-L, length statistics, perplexity) and the predictor's reply log-likelihoods."""

from __future__ import annotations

import math

import pytest
import torch

from ftframe.api import Prediction, ReplyScorer, TaskInfo
from ftframe.engine.evaluate import attach_reference_loglik
from ftframe.engine.predict import LocalPredictor

TASK = TaskInfo("t", "generation")


def preds(pairs):
    return [Prediction(i, [{"role": "user", "content": f"q{i}"}], gold, predicted, source=f"f:{i}")
            for i, (gold, predicted) in enumerate(pairs)]


def test_rouge_l_known_values(registry):
    m = registry.create("metric", "rouge_l")
    #  LCS("the cat sat", "the cat sat on the mat") = 3 words: P 3/3, R 3/6, F 2/3
    res = m.compute(preds([("the cat sat on the mat", "the cat sat")]), TASK)
    assert res.values["rouge_l_precision"] == pytest.approx(1.0)
    assert res.values["rouge_l_recall"] == pytest.approx(0.5)
    assert res.values["rouge_l"] == pytest.approx(2 / 3, abs=1e-4)
    # umlauts are letters: "Rückerstattung" is one word, so a German near-copy scores as such
    de = m.compute(preds([("Die Rückerstattung kam nicht", "Die Rückerstattung ist nicht gekommen")]), TASK)
    assert de.values["rouge_l"] == pytest.approx(2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4), abs=1e-4)


def test_rouge_l_averages_examples_and_reports_lengths(registry):
    m = registry.create("metric", "rouge_l")
    res = m.compute(preds([("a b c d", "a b c d"), ("x y", "z"), ("one", "")]), TASK)
    assert res.values["rouge_l"] == pytest.approx(1 / 3, abs=1e-4)
    length = res.details["length"]
    assert length["predicted_mean"] == pytest.approx(5 / 3, abs=1e-3)
    assert length["gold_mean"] == pytest.approx(7 / 3, abs=1e-3)
    assert length["empty_predictions"] == 1.0 and length["gold_max"] == 4.0
    assert res.values["length_ratio"] == pytest.approx(5 / 7, abs=1e-4)


def test_rouge_l_edge_cases(registry):
    m = registry.create("metric", "rouge_l")
    assert m.compute([], TASK).values == {"rouge_l": 0.0}
    assert m.compute(preds([(None, "x")]), TASK).details["skipped_without_gold"] == 1
    off = registry.create("metric", "rouge_l", {"length_stats": False}).compute(preds([("a", "a")]), TASK)
    assert "length" not in off.details and "length_ratio" not in off.values


def test_perplexity_is_token_weighted(registry):
    m = registry.create("metric", "perplexity")
    assert m.higher_is_better is False and "reference_loglik" in m.needs and not m.in_loop
    p = preds([("a", "-"), ("b", "-"), (None, "-")])
    p[0].reference_loglik, p[0].reference_tokens = -2.0, 2
    p[1].reference_loglik, p[1].reference_tokens = -6.0, 3
    res = m.compute(p, TASK)
    assert res.values["perplexity"] == pytest.approx(math.exp(8 / 5), rel=1e-5)
    assert res.details["tokens"] == 5 and res.details["scored"] == 2
    empty = m.compute(preds([("a", "b")]), TASK)
    assert empty.values == {} and empty.details["scored"] == 0  # no value is invented


def _manual_loglik(model, tok, prompt, reply):
    from ftframe.engine.chat import render

    p_ids = tok(render(tok, prompt, generation_prompt=True), add_special_tokens=False)["input_ids"]
    full = tok(render(tok, prompt + [{"role": "assistant", "content": reply}]).rstrip(),
               add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([full])).logits[0].float(), -1)
    return sum(float(logp[i - 1, full[i]]) for i in range(len(p_ids), len(full))), len(full) - len(p_ids)


def test_local_predictor_loglik_matches_a_full_forward_pass(tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    predictor = LocalPredictor(model, tiny_tokenizer, batch_size=2)
    assert isinstance(predictor, ReplyScorer)
    prompts = [[{"role": "user", "content": "where is my parcel"}],
               [{"role": "system", "content": "Answer."}, {"role": "user", "content": "app crash error 500"}],
               [{"role": "user", "content": "refund please"}]]
    replies = ["shipping", "technical issue with the app", "billing"]
    got = predictor.loglik(prompts, replies)
    for (ll, n), prompt, reply in zip(got, prompts, replies):
        want_ll, want_n = _manual_loglik(model, tiny_tokenizer, prompt, reply)
        assert n == want_n
        assert ll == pytest.approx(want_ll, abs=1e-3)
    # perplexity through the engine helper equals exp of the token-weighted NLL of the same numbers
    p = preds(list(zip(replies, ["-"] * 3)))
    for x, prompt in zip(p, prompts):
        x.prompt = prompt
    attach_reference_loglik(predictor, p)
    ppl = math.exp(-sum(ll for ll, _ in got) / sum(n for _, n in got))
    from ftframe.plugins import Registry, get_plugin_manager

    res = Registry(get_plugin_manager()).create("metric", "perplexity").compute(p, TASK)
    assert res.values["perplexity"] == pytest.approx(ppl, rel=1e-4)
