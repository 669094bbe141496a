"""Generation metrics (ROUGE, BLEU, chrF, length statistics, perplexity) and the predictor's reply log-likelihoods."""

from __future__ import annotations

import math

import pytest
import torch

from ftframe.api import Prediction, ReplyScorer, TaskInfo
from ftframe.engine.evaluate import attach_reference_loglik
from ftframe.engine.predict import LocalPredictor
from ftframe.errors import ConfigError

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


# Reference values. torchmetrics' docs examples (lightning.ai/docs/torchmetrics/stable/text/
# bleu_score.html, sacre_bleu_score.html, chrf_score.html, rouge_score.html) and the sacreBLEU README's
# "Using SacreBLEU from Python" example (github.com/mjpost/sacrebleu: BLEU = 48.53, chrF2 = 59.73) use
# several references per sentence; a Prediction has one gold answer, so those are checked on the library
# calls the metrics make (same classes, same options), and the metrics themselves on single references.
CAT = ["the cat is on the mat"], [["there is a cat on the mat", "a cat is on the mat"]]
DOG_SYS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
DOG_REFS = [["The dog bit the man.", "The dog had bit the man."], ["It was not unexpected.", "No one was surprised."],
            ["The man bit him first.", "The man had bitten the dog."]]


def test_the_library_calls_reproduce_the_documented_values():
    from torchmetrics.text import CHRFScore, SacreBLEUScore

    assert float(SacreBLEUScore()(*CAT)) == pytest.approx(0.7598, abs=1e-4)  # torchmetrics docs (BLEU-4)
    assert float(SacreBLEUScore()(DOG_SYS, DOG_REFS)) == pytest.approx(0.4853, abs=1e-4)  # sacreBLEU README
    assert float(CHRFScore(n_word_order=2)(*CAT)) == pytest.approx(0.8640, abs=1e-4)  # torchmetrics docs (chrF++)
    assert float(CHRFScore(n_word_order=0)(DOG_SYS, DOG_REFS)) == pytest.approx(0.5973, abs=1e-4)  # sacreBLEU README


def test_bleu_values(registry):
    bleu = registry.create("metric", "bleu")
    assert bleu.compute(preds([("The dog bit the man.", "The dog bit the man.")] * 2), TASK).values == {"bleu": 1.0}
    assert bleu.compute(preds([("a b c d e", "v w x y z")]), TASK).values["bleu"] == 0.0
    # Hand-computed corpus BLEU-4: "the cat sat on the mat" against "the cat sat on a mat" matches 5/6
    # unigrams (clipped "the"), 3/5 bigrams, 2/4 trigrams, 1/3 4-grams; equal lengths, so no brevity penalty.
    one = preds([("the cat sat on a mat", "the cat sat on the mat")])
    assert bleu.compute(one, TASK).values["bleu"] == pytest.approx((5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25, abs=1e-4)
    smooth = registry.create("metric", "bleu", {"smooth": True}).compute(one, TASK).values["bleu"]
    assert smooth == pytest.approx((5 / 6 * 4 / 6 * 3 / 5 * 2 / 4) ** 0.25, abs=1e-4)  # add-one above unigrams
    bigram = registry.create("metric", "bleu", {"n_gram": 2}).compute(one, TASK).values["bleu"]
    assert bigram == pytest.approx((5 / 6 * 3 / 5) ** 0.5, abs=1e-4)
    # A short answer matching at every order pays only the brevity penalty: exp(1 - 6/4), the gold being
    # six tokens because 13a splits the full stop off "man." (whitespace splitting would make it five)
    short = bleu.compute(preds([("The dog bit the man.", "The dog bit the")]), TASK).values["bleu"]
    assert short == pytest.approx(math.exp(1 - 6 / 4), abs=1e-4)
    # corpus-level: the n-gram counts of both pairs are summed, not the two scores averaged
    two = bleu.compute(preds([("the cat sat on a mat", "the cat sat on the mat"), ("v w x y", "v w x y")]), TASK)
    assert two.values["bleu"] == pytest.approx((9 / 10 * 6 / 8 * 4 / 6 * 2 / 4) ** 0.25, abs=1e-4)
    cased = preds([("The Cat", "the cat")])
    assert bleu.compute(cased, TASK).values["bleu"] == 0.0
    bigram_lc = registry.create("metric", "bleu", {"lowercase": True, "n_gram": 2})
    assert bigram_lc.compute(cased, TASK).values["bleu"] == 1.0
    with pytest.raises(ConfigError, match="metrics.bleu.tokenize"):
        registry.create("metric", "bleu", {"tokenize": "moses"})


def test_chrf_values(registry):
    chrf = registry.create("metric", "chrf")
    assert chrf.compute(preds([("Die Rückerstattung kam nicht", "Die Rückerstattung kam nicht")]), TASK).values == {
        "chrf": 1.0}
    assert chrf.compute(preds([("abc", "xyz")]), TASK).values["chrf"] == 0.0
    # Hand-computed chrF (n_char_order 1 for hand-checking): "ab" against "abc" matches 2 of 2 predicted
    # and 2 of 3 gold characters: P 1, R 2/3, F2 = 5PR / (4P + R) = (10/3) / (14/3) = 5/7
    one_char = registry.create("metric", "chrf", {"n_char_order": 1}).compute(preds([("abc", "ab")]), TASK)
    assert one_char.values["chrf"] == pytest.approx(5 / 7, abs=1e-4)
    # chrF++ (word unigrams and bigrams too) scores the same near-copy otherwise
    near = preds([("the cat is on the mat", "the cat is on a mat")])
    plus = registry.create("metric", "chrf", {"n_word_order": 2}).compute(near, TASK).values["chrf"]
    assert 0 < plus < 1 and plus != pytest.approx(chrf.compute(near, TASK).values["chrf"], abs=1e-3)
    with pytest.raises(ConfigError, match="metrics.chrf"):
        registry.create("metric", "chrf", {"beta": 0})


def test_rouge_reports_every_variant_against_the_documented_example(registry):
    rouge = registry.create("metric", "rouge")
    # torchmetrics' ROUGEScore docs: "My name is John" against "Is your name John"
    res = rouge.compute(preds([("Is your name John", "My name is John")]), TASK)
    for variant, value in {"rouge_1": 0.75, "rouge_2": 0.0, "rouge_l": 0.5, "rouge_lsum": 0.5}.items():
        for suffix in ("", "_precision", "_recall"):
            assert res.values[variant + suffix] == pytest.approx(value, abs=1e-4), variant + suffix
    assert res.values["rouge"] == res.values["rouge_l"]  # the headline, by default ROUGE-L
    assert registry.create("metric", "rouge", {"headline": "rouge_2"}).compute(
        preds([("Is your name John", "My name is John")]), TASK).values["rouge"] == 0.0
    with pytest.raises(ConfigError, match="metrics.rouge.headline"):
        registry.create("metric", "rouge", {"headline": "rougeL"})
    # rouge_l is rouge's ROUGE-L: the same numbers under the same names
    same = preds([("the cat sat on the mat", "the cat sat"), ("a b c d", "a x c")])
    full, only_l = rouge.compute(same, TASK).values, registry.create("metric", "rouge_l").compute(same, TASK).values
    assert only_l == {k: full[k] for k in only_l} and "rouge_1" not in only_l


def test_rouge_lsum_is_the_union_lcs_over_lines(registry):
    # Lin (2004), "ROUGE: A Package for Automatic Evaluation of Summaries", section 3.2: reference
    # w1 w2 w3 w4 w5, candidate sentences w1 w2 w6 w7 w8 and w1 w3 w8 w9 w5; the union LCS is
    # w1 w2 w3 w5, so recall 4/5; precision 4/10 (ten candidate words).
    res = registry.create("metric", "rouge").compute(preds([("w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5")]),
                                                      TASK).values
    assert res["rouge_lsum_recall"] == pytest.approx(0.8) and res["rouge_lsum_precision"] == pytest.approx(0.4)
    assert res["rouge_lsum"] == pytest.approx(2 * 0.4 * 0.8 / 1.2, abs=1e-4)
    # the union does not care about the order of the sentences; ROUGE-L, one sequence, does: w1 w3 w5
    swapped = registry.create("metric", "rouge").compute(
        preds([("w1 w2 w3 w4 w5", "w1 w3 w8 w9 w5\nw1 w2 w6 w7 w8")]), TASK).values
    assert swapped["rouge_lsum_recall"] == pytest.approx(0.8) and swapped["rouge_l_recall"] == pytest.approx(0.6)


def test_text_metrics_identical_disjoint_empty_and_without_gold(registry):
    for name in ("bleu", "chrf", "rouge"):
        m = registry.create("metric", name)
        assert m.compute(preds([("vier Wörter stehen hier", "vier Wörter stehen hier")]), TASK).values[name] == pytest.approx(1.0)
        assert m.compute(preds([("abc def ghi jkl", "xxxx yyyy zzzz qqqq")]), TASK).values[name] == 0.0
        res = m.compute(preds([("x y z w", "x y z w"), ("x y z w", ""), (None, "anything")]), TASK)
        assert res.details["n"] == 2 and res.details["empty_predictions"] == 1
        assert res.details["skipped_without_gold"] == 1
        assert 0 < res.values[name] < 1  # the empty answer counts against the score
        nothing = m.compute(preds([(None, "x")]), TASK)
        assert nothing.values == {name: 0.0} and nothing.details["n"] == 0


def test_text_metrics_compose_from_the_command_line():
    from ftframe.testing import compose

    cfg = compose(["data.path=x", "metrics=[bleu,chrf,rouge]", "metrics.bleu.n_gram=2",
                   "metrics.chrf.n_word_order=2", "task.primary_metric=rouge"])
    assert set(cfg.metrics) == {"bleu", "chrf", "rouge"}
    assert cfg.metrics.bleu.n_gram == 2 and cfg.metrics.bleu.tokenize == "13a"
    assert cfg.metrics.chrf.n_word_order == 2 and cfg.metrics.rouge.headline == "rouge_l"
    assert set(compose(["data.path=x", "+metrics=[bleu]"]).metrics) == {"macro_f1", "accuracy", "bleu"}  # added


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
