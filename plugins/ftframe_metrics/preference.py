"""Side-by-side preference: the tuned model's answers against a baseline's, decided by a judge plugin.

Every pair is judged twice, once in each order (``swap``), and the two verdicts are averaged, so a
judge that favours the first (or second) answer cancels out; how often the two orders agree is
reported as ``preference_position_consistency``. The win-rate counts a tie as half a win; its
confidence interval is a seeded percentile bootstrap over examples. With more systems
(``systems``), every pair of systems is judged and a Bradley–Terry model ranks them.
Every verdict is written with its reason to ``<prefix>judgements.jsonl`` in the run dir.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftframe.api import Judge, Metric, MetricContext, MetricResult, Prediction, TaskInfo, Verdict
from ftframe.errors import ConfigError, DataError
from ftframe.io import write_jsonl

TUNED, BASELINE = "tuned", "baseline"


@dataclass
class PreferenceConfig:
    judge: str = "loglik"
    """Judge plugin deciding each pair (``human_labels``, ``llm``, ``loglik`` or a third-party one)."""
    judge_options: dict[str, Any] = field(default_factory=dict)
    """Options of the judge (its ``Config``), e.g. ``{model: smollm2}`` or ``{path: verdicts.jsonl}``."""
    baseline: str | None = None
    """The other side: a predictions file (or a run dir holding ``predictions.jsonl``) of another run.
    Default: the untuned model's predictions in this run (``eval.baseline=true``)."""
    systems: dict[str, str] = field(default_factory=dict)
    """More systems to rank, ``name: predictions file or run dir``; with them every pair of systems is
    judged and a Bradley–Terry ranking is reported."""
    swap: bool = True
    """Judge each pair in both orders and average, cancelling the judge's position bias."""
    confidence: float = 0.95
    """Level of the bootstrap confidence interval of the win-rate."""
    bootstrap: int = 2000
    """Bootstrap resamples."""
    seed: int = 0
    """Seed of the bootstrap."""

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise ConfigError(f"metrics.preference.confidence must be in (0, 1), got {self.confidence}.")
        if self.bootstrap < 100:
            raise ConfigError(f"metrics.preference.bootstrap must be at least 100, got {self.bootstrap}.")
        for name in self.systems:
            if name in (TUNED, BASELINE):
                raise ConfigError(f"metrics.preference.systems: {name!r} is reserved; name the system otherwise.")


def prompt_key(prompt: Sequence[Mapping[str, Any]]) -> str:
    """Examples of different runs are matched by their prompt (the conversation before the answer)."""
    return json.dumps(list(prompt), sort_keys=True, ensure_ascii=False)


def read_predictions(spec: str) -> list[Prediction]:
    """A ``predictions.jsonl`` file, or the one inside a run dir."""
    path = Path(spec)
    if path.is_dir():
        path = path / "predictions.jsonl"
    if not path.is_file():
        raise DataError(f"{spec}: no predictions file (expected a predictions.jsonl or a run dir holding one).")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(Prediction.from_record(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}:{n}: not a prediction record ({type(exc).__name__}: {exc}); expected the "
                            f"predictions.jsonl an ftframe run writes.") from None
    return out


def pair_score(first: Verdict | None, second: Verdict | None) -> float | None:
    """Score of system X in [0, 1] from a verdict on (X, Y) and one on (Y, X); ``None`` if neither exists."""
    scores = []
    if first is not None:
        scores.append({"a": 1.0, "b": 0.0}.get(first.winner, 0.5))
    if second is not None:
        scores.append({"b": 1.0, "a": 0.0}.get(second.winner, 0.5))
    return sum(scores) / len(scores) if scores else None


def bootstrap_ci(scores: Sequence[float], *, confidence: float, resamples: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``scores``."""
    import numpy as np

    if not scores:
        return 0.0, 1.0
    rng = np.random.default_rng(seed)
    arr = np.asarray(scores, dtype=float)
    means = arr[rng.integers(0, len(arr), size=(resamples, len(arr)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def bradley_terry(systems: Sequence[str], outcomes: Sequence[tuple[str, str, float]], *,
                  prior: float = 0.1, iterations: int = 1000, tol: float = 1e-10) -> dict[str, float]:
    """Bradley–Terry strengths (geometric mean 1) from ``(x, y, score of x)`` outcomes, ties as halves.

    Hunter's (2004) MM iteration; ``prior`` adds that many tied games to every pair of systems so that
    a system without a single win keeps a finite strength. Written here because it is a dozen lines and
    the libraries that have it (choix) would be a dependency for nothing else.
    """
    import numpy as np

    idx = {s: i for i, s in enumerate(systems)}
    k = len(systems)
    wins = np.full((k, k), prior / 2)
    games = np.full((k, k), prior)
    np.fill_diagonal(wins, 0.0)
    np.fill_diagonal(games, 0.0)
    for x, y, s in outcomes:
        i, j = idx[x], idx[y]
        wins[i, j] += s
        wins[j, i] += 1 - s
        games[i, j] += 1
        games[j, i] += 1
    p = np.ones(k)
    for _ in range(iterations):
        denom = (games / (p[:, None] + p[None, :])).sum(axis=1)
        new = wins.sum(axis=1) / denom
        new /= math.exp(np.log(new).mean())
        if np.abs(new - p).max() < tol:
            p = new
            break
        p = new
    return {s: float(p[idx[s]]) for s in systems}


class PreferenceMetric(Metric):
    """Win-rate of the tuned model against a baseline by a judge, position-debiased, with a bootstrap
    confidence interval; Bradley–Terry ranking for more than two systems."""

    name = "preference"
    Config = PreferenceConfig
    in_loop = False  # a judge per validation epoch costs far more than it tells

    def __init__(self, config: Any = None):
        super().__init__(config)
        self._judge: Judge | None = None
        self._consistency: dict[tuple[str, str], list[bool]] = {}

    def judge_plugin(self, registry: Any) -> Judge:
        """The configured judge, created and prepared once per metric instance."""
        if self._judge is None:
            from ftframe.config.plugin_options import build_config
            from ftframe.plugins import Registry, get_plugin_manager

            registry = registry or Registry(get_plugin_manager())
            cls = registry.get("judge", self.config.judge)
            judge = cls(build_config(cls, self.config.judge_options, key="metrics.preference.judge_options"))
            judge.prepare(registry)  # type: ignore[attr-defined]
            self._judge = judge  # type: ignore[assignment]
        return self._judge  # type: ignore[return-value]

    def compute(self, predictions: Sequence[Prediction], task: TaskInfo,
                context: MetricContext | None = None) -> MetricResult:
        context = context or MetricContext()
        reference = read_predictions(self.config.baseline) if self.config.baseline else context.baseline
        if reference is None:
            if context.prefix.startswith("baseline_"):  # the untuned model is not compared with itself
                return MetricResult({}, {"skipped": "this is the baseline's own evaluation"})
            raise ConfigError("metrics.preference: nothing to compare with. Keep eval.baseline=true (the untuned "
                              "model's answers) or set metrics.preference.baseline=PREDICTIONS_OR_RUN_DIR.")
        answers = {TUNED: predictions, BASELINE: reference}
        answers.update({name: read_predictions(spec) for name, spec in self.config.systems.items()})
        keys, table = _align(answers)
        self._consistency = {}
        judge = self.judge_plugin(context.registry)
        audit: list[dict[str, Any]] = []
        per_pair: dict[tuple[str, str], list[float | None]] = {}
        for x, y in itertools.combinations(list(answers), 2):
            per_pair[(x, y)] = self._judge_pair(judge, keys, table, x, y, audit)
        details: dict[str, Any] = {"judge": self.config.judge, "examples": len(keys),
                                   "unmatched": len(predictions) - len(keys),
                                   "swap": self.config.swap,
                                   "ci": f"{self.config.confidence:.0%} percentile bootstrap over examples "
                                         f"({self.config.bootstrap} resamples, seed {self.config.seed})"}
        values = self._head_to_head(per_pair[(TUNED, BASELINE)], audit, details)
        if len(answers) > 2:
            outcomes = [(x, y, s) for (x, y), scores in per_pair.items() for s in scores if s is not None]
            strengths = bradley_terry(list(answers), outcomes)
            ranking = sorted(strengths, key=strengths.__getitem__, reverse=True)
            details["bradley_terry"] = [{"rank": r + 1, "system": s, "strength": round(strengths[s], 4),
                                         "log_strength": round(math.log(strengths[s]), 4)}
                                        for r, s in enumerate(ranking)]
        if context.run_dir is not None:
            path = write_jsonl(context.run_dir / f"{context.prefix}judgements.jsonl", audit)
            details["judgements"] = str(path)
        return MetricResult(values, details)

    def _judge_pair(self, judge: Judge, keys: list[str], table: dict[str, dict[str, Prediction]], x: str, y: str,
                    audit: list[dict[str, Any]]) -> list[float | None]:
        """Per-example score of ``x`` against ``y`` (``None``: no verdict in either order)."""
        items, slots = [], []  # slots[i] = (example, order) of items[i]
        identical = set()
        for e, key in enumerate(keys):
            px, py = table[x][key], table[y][key]
            if px.predicted.strip() == py.predicted.strip():
                identical.add(e)
                continue
            items.append((px.prompt, px.predicted, py.predicted))
            slots.append((e, "xy"))
            if self.config.swap:
                items.append((px.prompt, py.predicted, px.predicted))
                slots.append((e, "yx"))
        verdicts = judge.judge_batch(items)
        if len(verdicts) != len(items):
            raise DataError(f"judge {self.config.judge!r} returned {len(verdicts)} verdicts for {len(items)} pairs.")
        by_example: dict[int, dict[str, Verdict | None]] = {}
        for (e, order), verdict, item in zip(slots, verdicts, items):
            by_example.setdefault(e, {})[order] = verdict
            first, second = (x, y) if order == "xy" else (y, x)
            pred = table[x][keys[e]]
            audit.append({"example": e, "source": pred.source, "prompt": item[0], "a_system": first,
                          "b_system": second, "a": item[1], "b": item[2],
                          "winner": verdict.winner if verdict else None,
                          "winner_system": (None if verdict is None else "tie" if verdict.winner == "tie"
                                            else first if verdict.winner == "a" else second),
                          "reason": verdict.reason if verdict else "no verdict (the judge has none for this pair)",
                          "judge": self.config.judge})
        scores: list[float | None] = []
        self._consistency[(x, y)] = [
            _system_winner(got["xy"], x, y) == _system_winner(got["yx"], y, x)
            for got in by_example.values() if got.get("xy") is not None and got.get("yx") is not None]
        for e, key in enumerate(keys):
            if e in identical:
                scores.append(0.5)
                audit.append({"example": e, "source": table[x][key].source, "a_system": x, "b_system": y,
                              "a": table[x][key].predicted, "b": table[y][key].predicted, "winner": "tie",
                              "winner_system": "tie", "reason": "identical answers (not sent to the judge)",
                              "judge": None})
            else:
                got = by_example.get(e, {})
                scores.append(pair_score(got.get("xy"), got.get("yx")))
        return scores

    def _head_to_head(self, scores: list[float | None], audit: list[dict[str, Any]],
                      details: dict[str, Any]) -> dict[str, float]:
        judged = [s for s in scores if s is not None]
        n = len(judged)
        details["unjudged"] = len(scores) - n
        if not n:
            details["note"] = "no pair was judged"
            return {}
        wins, ties, losses = (sum(s > 0.5 for s in judged), sum(s == 0.5 for s in judged),
                              sum(s < 0.5 for s in judged))
        low, high = bootstrap_ci(judged, confidence=self.config.confidence, resamples=self.config.bootstrap,
                                 seed=self.config.seed)
        details.update(wins=wins, ties=ties, losses=losses)
        values = {"preference": sum(judged) / n, "preference_win": wins / n, "preference_tie": ties / n,
                  "preference_loss": losses / n, "preference_ci_low": low, "preference_ci_high": high}
        decided = [r for r in audit if r["judge"] is not None and r["winner"] is not None
                   and {r["a_system"], r["b_system"]} == {TUNED, BASELINE}]
        if decided:
            details["first_position_preferred"] = round(sum(r["winner"] == "a" for r in decided) / len(decided), 4)
        consistent = self._consistency.get((TUNED, BASELINE), [])
        if consistent:  # both orders judged: how often they name the same system (1.0: no position bias)
            values["preference_position_consistency"] = sum(consistent) / len(consistent)
        return values


def _system_winner(verdict: Verdict, first: str, second: str) -> str:
    return {"a": first, "b": second}.get(verdict.winner, "tie")


def _align(answers: Mapping[str, Sequence[Prediction]]) -> tuple[list[str], dict[str, dict[str, Prediction]]]:
    """Prompts every system answered (in the tuned predictions' order) and ``system -> prompt -> prediction``."""
    table = {name: {prompt_key(p.prompt): p for p in preds} for name, preds in answers.items()}
    keys = [k for k in table[TUNED] if all(k in t for t in table.values())]
    if not keys:
        raise DataError("metrics.preference: the baseline/systems predictions share no prompt with this "
                        "evaluation; compare predictions made on the same examples.")
    return keys, table
