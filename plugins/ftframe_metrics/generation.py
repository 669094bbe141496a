"""Free-text metrics: perplexity of the gold answers; ROUGE, BLEU and chrF against the gold answers
(torchmetrics' text metrics); length statistics."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ftframe.api import Metric, MetricResult, Prediction, TaskInfo
from ftframe.config import one_of
from ftframe.errors import ConfigError

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased Unicode word tokens.

    torchmetrics' default ROUGE tokenizer keeps only ``[a-z0-9]``, which splits German words at every
    umlaut ("Rückerstattung" -> "r", "ckerstattung"); this one keeps letters of every script.
    """
    return _WORD.findall(text.lower())


class Perplexity(Metric):
    """``exp(-sum log p / tokens)`` of the gold answers under the model (token-weighted over the split).

    Needs a predictor that can score a given reply (:class:`ftframe.api.ReplyScorer`); local models can.
    Lower is better, so a gate threshold on it is a maximum.
    """

    name = "perplexity"
    higher_is_better = False
    needs = frozenset({"reference_loglik"})
    in_loop = False  # the validation loss measures the same during training

    def compute(self, predictions: Sequence[Prediction], task: TaskInfo) -> MetricResult:
        # torchmetrics' Perplexity wants the full [batch, tokens, vocabulary] logits, which a predictor
        # behind an API never has; the predictor hands back summed log-probabilities per answer, and
        # token-weighted mean NLL is all perplexity needs from them.
        from torchmetrics.aggregation import MeanMetric

        scored = [p for p in predictions if p.reference_loglik is not None and p.reference_tokens]
        if not scored:
            # no value rather than a made-up one: a gate on perplexity then fails as "missing"
            return MetricResult({}, {"n": len(predictions), "scored": 0, "note": "no gold answers to score"})
        nll = MeanMetric()
        for p in scored:
            nll.update(-p.reference_loglik / p.reference_tokens, weight=p.reference_tokens)  # type: ignore[operator]
        mean_nll = float(nll.compute())
        tokens = sum(int(p.reference_tokens) for p in scored)  # type: ignore[misc]
        return MetricResult({"perplexity": math.exp(mean_nll)},
                            {"n": len(predictions), "scored": len(scored), "tokens": tokens,
                             "mean_nll": round(mean_nll, 6), "skipped_without_gold": len(predictions) - len(scored)})


ROUGE_VARIANTS = {"rouge_1": "rouge1", "rouge_2": "rouge2", "rouge_l": "rougeL", "rouge_lsum": "rougeLsum"}
"""Our value names and torchmetrics' ``rouge_keys``."""
BLEU_TOKENIZERS = ("13a", "intl", "char", "zh", "none")
"""SacreBLEU's tokenizers that need no extra package (``ja-mecab``, ``ko-mecab``, ``flores*`` do)."""


class TextMetric(Metric):
    """An answer-against-gold-text metric: predictions without a gold answer are skipped (counted in
    ``skipped_without_gold``), empty answers are scored (and counted in ``empty_predictions``), and with
    nothing to score the value is 0 with ``n`` 0. Subclasses implement :meth:`score`."""

    def compute(self, predictions: Sequence[Prediction], task: TaskInfo) -> MetricResult:
        pairs = [(p.predicted, p.gold) for p in predictions if p.gold is not None]
        details: dict[str, object] = {"n": len(pairs), "skipped_without_gold": len(predictions) - len(pairs),
                                      "empty_predictions": sum(1 for p, _ in pairs if not p.strip())}
        if not pairs:
            return MetricResult({self.name: 0.0}, details)
        predicted, gold = [p for p, _ in pairs], [g for _, g in pairs]
        values = self.score(predicted, gold)
        if getattr(self.config, "length_stats", False):
            details["length"] = length_stats(predicted, gold)
            ratio = details["length"]["ratio"]  # type: ignore[index]
            if ratio is not None:
                values["length_ratio"] = ratio
        return MetricResult(values, details)

    def score(self, predicted: list[str], gold: list[str]) -> dict[str, float]:
        raise NotImplementedError


@dataclass
class RougeLConfig:
    length_stats: bool = True
    """Also report answer lengths in words (mean of predicted and gold, and their ratio)."""


@dataclass
class RougeConfig(RougeLConfig):
    headline: str = "rouge_l"
    """The variant whose F-measure is also the value ``rouge`` (what ``task.primary_metric=rouge`` and a gate
    on ``rouge`` read): ``rouge_1``, ``rouge_2``, ``rouge_l`` or ``rouge_lsum``."""

    def __post_init__(self) -> None:
        one_of("metrics.rouge.headline", self.headline, tuple(ROUGE_VARIANTS))


class Rouge(TextMetric):
    """ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum F-measures (with precision and recall) against the gold
    answer, averaged over examples (torchmetrics), on lower-cased Unicode words; with length statistics."""

    name = "rouge"
    Config = RougeConfig
    variants: tuple[str, ...] = tuple(ROUGE_VARIANTS)

    def score(self, predicted: list[str], gold: list[str]) -> dict[str, float]:
        values: dict[str, float] = {}
        for variant, prf in rouge_scores(predicted, gold, self.variants).items():
            values[variant] = prf["fmeasure"]
            values[f"{variant}_precision"], values[f"{variant}_recall"] = prf["precision"], prf["recall"]
        values[self.name] = values[getattr(self.config, "headline", self.name)]
        return values


class RougeL(Rouge):
    """ROUGE-L F-measure (longest common subsequence of words) against the gold answer, averaged over
    examples, with precision/recall and length statistics: the ``rouge_l*`` values of ``rouge``."""

    name = "rouge_l"
    Config = RougeLConfig
    variants = ("rouge_l",)


def rouge_scores(predicted: Sequence[str], gold: Sequence[str],
                 variants: Sequence[str] = tuple(ROUGE_VARIANTS)) -> dict[str, dict[str, float]]:
    """Per variant (``rouge_1``...), precision, recall and F-measure averaged over the pairs.

    Tokens are :func:`words`. ROUGE-Lsum is the summary-level LCS over sentences taken at line breaks,
    as the rouge-score package defines it: torchmetrics' own ``rougeLsum`` splits sentences with nltk's
    punkt model, which it downloads, so this calls torchmetrics' summary-level LCS on the lines instead.
    """
    from torchmetrics.functional.text.rouge import _rouge_lsum_score
    from torchmetrics.text.rouge import ROUGEScore

    out: dict[str, dict[str, float]] = {}
    keys = tuple(ROUGE_VARIANTS[v] for v in variants if v != "rouge_lsum")
    if keys:
        scores = ROUGEScore(rouge_keys=keys, tokenizer=words, normalizer=lambda s: s)(list(predicted), list(gold))
        for variant in variants:
            if variant != "rouge_lsum":
                out[variant] = {k: float(scores[f"{ROUGE_VARIANTS[variant]}_{k}"])
                                for k in ("precision", "recall", "fmeasure")}
    if "rouge_lsum" in variants:
        per_pair = [_rouge_lsum_score(_lines(p), _lines(g)) for p, g in zip(predicted, gold)]
        out["rouge_lsum"] = {k: statistics.fmean(float(s[k]) for s in per_pair)
                             for k in ("precision", "recall", "fmeasure")}
    return out


def _lines(text: str) -> list[list[str]]:
    return [tokens for line in text.splitlines() if (tokens := words(line))]


@dataclass
class BleuConfig:
    n_gram: int = 4
    """Longest n-gram counted (BLEU-4 by default; 1 to 4)."""
    smooth: bool = False
    """Add-one smoothing of the 2..n-gram precisions (torchmetrics' ``smooth``). It only changes a score
    whose every order has a match: with no matching n-gram of some order BLEU is 0 either way (lower
    ``n_gram`` for answers of a few words)."""
    tokenize: str = "13a"
    """SacreBLEU tokenizer: ``13a`` (WMT's standard, mteval-v13a: punctuation split off), ``intl``
    (Unicode punctuation and symbols split off), ``char`` (characters), ``zh`` (Chinese characters) or
    ``none`` (whitespace only)."""
    lowercase: bool = False
    """Compare case-insensitively."""

    def __post_init__(self) -> None:
        one_of("metrics.bleu.tokenize", self.tokenize, BLEU_TOKENIZERS)
        if not 1 <= self.n_gram <= 4:
            raise ConfigError(f"metrics.bleu.n_gram must be 1 to 4, got {self.n_gram}.")


class Bleu(TextMetric):
    """Corpus BLEU (Papineni et al. 2002) of the answers against the gold answers, 0 to 1, as SacreBLEU
    computes it (torchmetrics' ``SacreBLEUScore``)."""

    name = "bleu"
    Config = BleuConfig

    def score(self, predicted: list[str], gold: list[str]) -> dict[str, float]:
        # SacreBLEU rather than torchmetrics' BLEUScore: it tokenizes detokenized text itself with a fixed,
        # named tokenizer (13a, as WMT reports), so scores compare across papers and tools; BLEUScore only
        # splits at spaces, which makes "mat." and "mat" different words.
        from torchmetrics.text import SacreBLEUScore

        c = self.config
        bleu = SacreBLEUScore(n_gram=c.n_gram, smooth=c.smooth, tokenize=c.tokenize, lowercase=c.lowercase)
        return {self.name: float(bleu(predicted, [[g] for g in gold]))}


@dataclass
class ChrfConfig:
    n_word_order: int = 0
    """Word n-grams besides the character n-grams: 0 is chrF (Popović 2015, SacreBLEU's default), 2 is
    chrF++ (Popović 2017, torchmetrics' default)."""
    n_char_order: int = 6
    """Longest character n-gram."""
    beta: float = 2.0
    """Weight of recall against precision (chrF2: recall twice as important)."""
    lowercase: bool = False
    """Compare case-insensitively."""
    whitespace: bool = False
    """Count whitespace inside character n-grams (SacreBLEU and the paper leave it out)."""

    def __post_init__(self) -> None:
        if self.n_char_order < 1 or self.n_word_order < 0 or self.beta <= 0:
            raise ConfigError(f"metrics.chrf: n_char_order must be at least 1, n_word_order at least 0 and beta "
                              f"positive; got {self.n_char_order}, {self.n_word_order}, {self.beta}.")


class Chrf(TextMetric):
    """Corpus chrF (character n-gram F-score; chrF++ with ``n_word_order=2``) of the answers against the
    gold answers, 0 to 1 (torchmetrics' ``CHRFScore``, which follows SacreBLEU)."""

    name = "chrf"
    Config = ChrfConfig

    def score(self, predicted: list[str], gold: list[str]) -> dict[str, float]:
        from torchmetrics.text import CHRFScore

        c = self.config
        chrf = CHRFScore(n_char_order=c.n_char_order, n_word_order=c.n_word_order, beta=c.beta,
                         lowercase=c.lowercase, whitespace=c.whitespace)
        return {self.name: float(chrf(predicted, [[g] for g in gold]))}


def length_stats(predicted: Sequence[str], gold: Sequence[str]) -> dict[str, float | None]:
    """Word counts of the answers: mean/median/max of predicted and gold, empty answers, and the ratio of
    the means (above 1: the model says more than the references)."""
    pl = [len(words(t)) for t in predicted]
    gl = [len(words(t)) for t in gold]
    mean_p, mean_g = statistics.fmean(pl), statistics.fmean(gl)
    return {"predicted_mean": round(mean_p, 3), "predicted_median": float(statistics.median(pl)),
            "predicted_max": float(max(pl)), "gold_mean": round(mean_g, 3),
            "gold_median": float(statistics.median(gl)), "gold_max": float(max(gl)),
            "empty_predictions": float(sum(1 for n in pl if n == 0)),
            "ratio": round(mean_p / mean_g, 4) if mean_g else None}
