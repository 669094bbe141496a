"""Free-text metrics: perplexity of the gold answers, ROUGE-L (torchmetrics) and length statistics."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ftframe.api import Metric, MetricResult, Prediction, TaskInfo

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


@dataclass
class RougeConfig:
    length_stats: bool = True
    """Also report answer lengths in words (mean of predicted and gold, and their ratio)."""


class RougeL(Metric):
    """ROUGE-L F-measure (longest common subsequence of words) against the gold answer, averaged over
    examples, with precision/recall and length statistics."""

    name = "rouge_l"
    Config = RougeConfig

    def compute(self, predictions: Sequence[Prediction], task: TaskInfo) -> MetricResult:
        from torchmetrics.text.rouge import ROUGEScore

        pairs = [(p.predicted, p.gold) for p in predictions if p.gold is not None]
        if not pairs:
            return MetricResult({"rouge_l": 0.0}, {"n": 0, "skipped_without_gold": len(predictions)})
        rouge = ROUGEScore(rouge_keys="rougeL", tokenizer=words, normalizer=lambda s: s)
        scores = rouge([p for p, _ in pairs], [g for _, g in pairs])
        values = {"rouge_l": float(scores["rougeL_fmeasure"]),
                  "rouge_l_precision": float(scores["rougeL_precision"]),
                  "rouge_l_recall": float(scores["rougeL_recall"])}
        details: dict[str, object] = {"n": len(pairs), "skipped_without_gold": len(predictions) - len(pairs)}
        if self.config.length_stats:
            details["length"] = length_stats([p for p, _ in pairs], [g for _, g in pairs])
            ratio = details["length"]["ratio"]  # type: ignore[index]
            if ratio is not None:
                values["length_ratio"] = ratio
        return MetricResult(values, details)


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
