"""Judges that run a model in this process, loaded through any model source plugin.

- ``llm``: the judge model reads a rubric prompt with both answers and picks ``A``, ``B`` or ``tie``,
  either by the log-likelihood of each choice (``method: score``, a constrained choice in one batched
  pass) or by greedy generation parsed for the choice (``method: generate``; an unparseable reply is
  no verdict, never a guess).
- ``loglik``: the answer the judge model finds more likely as a reply to the request wins
  (mean log-probability per token by default, so a longer answer is not punished for its length).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ftframe.api import Judge, Message, Verdict
from ftframe.config import one_of
from ftframe.errors import ConfigError, NoVerdict

DEFAULT_RUBRIC = """You are judging two answers to the same request.

Request:
{request}

Answer A:
{a}

Answer B:
{b}

Which answer is more correct, more helpful and follows the request's instructions more closely? \
Reply with exactly one of: A, B, tie."""

CHOICES = {"a": "A", "b": "B", "tie": "tie"}
_CHOICE = re.compile(r"\b(A|B|tie)\b", re.IGNORECASE)


@dataclass
class LocalModelJudgeConfig:
    model: str = "smollm2"
    """Model source of the judge model (any installed one: ``smollm2``, ``hf_local``...)."""
    model_options: dict[str, Any] = field(default_factory=dict)
    """Options of that model source, e.g. ``{path: /models/judge}`` for ``hf_local``."""
    dtype: str | None = None
    """Load dtype (``fp32``, ``bf16``); the model source's default when unset."""
    batch_size: int = 8
    """Pairs per forward pass."""


class _LocalModelJudge(Judge):
    """Shared loading: the judge model is loaded once, in ``prepare`` (or on the first verdict)."""

    def __init__(self, config: Any = None):
        super().__init__(config)
        self.predictor: Any = None

    def prepare(self, registry: Any) -> None:
        if self.predictor is not None:
            return
        from ftframe.engine import LocalPredictor

        source = registry.create("model_source", self.config.model, self.config.model_options)
        loaded = source.load(dtype=self.config.dtype)
        self.predictor = LocalPredictor(loaded.model, loaded.tokenizer, name=f"judge {loaded.name}",
                                        batch_size=self.config.batch_size)

    def _ready(self) -> Any:
        if self.predictor is None:
            from ftframe.plugins import Registry, get_plugin_manager

            self.prepare(Registry(get_plugin_manager()))
        return self.predictor

    def judge(self, prompt: list[Message], a: str, b: str) -> Verdict:
        verdict = self.judge_batch([(prompt, a, b)])[0]
        if verdict is None:
            raise NoVerdict("the judge model gave no usable verdict for this pair")
        return verdict


def conversation_text(prompt: Sequence[Message]) -> str:
    """The request as the judge reads it: each message as ``role: content`` (system prompts included)."""
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in prompt if m.get("content"))


@dataclass
class LlmJudgeConfig(LocalModelJudgeConfig):
    rubric: str = DEFAULT_RUBRIC
    """The judge's instructions, with placeholders ``{request}``, ``{a}`` and ``{b}``."""
    method: str = "score"
    """``score``: the most likely of the choices A/B/tie; ``generate``: parse a greedy reply."""
    allow_tie: bool = True
    """Offer ``tie`` as a choice (``score`` method)."""
    max_new_tokens: int = 8
    """Reply length for ``method: generate``."""

    def __post_init__(self) -> None:
        one_of("judge_options.method", self.method, ("score", "generate"))
        missing = [p for p in ("{request}", "{a}", "{b}") if p not in self.rubric]
        if missing:
            raise ConfigError(f"judge_options.rubric: the rubric must contain {', '.join(missing)} "
                              f"(where the request and the two answers go).")


class LlmJudge(_LocalModelJudge):
    """A local LLM reads a configurable rubric with both answers and answers A, B or tie."""

    name = "llm"
    Config = LlmJudgeConfig

    def _prompt(self, prompt: Sequence[Message], a: str, b: str) -> list[Message]:
        text = (self.config.rubric.replace("{request}", conversation_text(prompt))
                .replace("{a}", a).replace("{b}", b))  # replace, not format: answers may hold braces
        return [{"role": "user", "content": text}]

    def judge_batch(self, items: Sequence[tuple[list[Message], str, str]]) -> list[Verdict | None]:
        if not items:
            return []
        predictor = self._ready()
        prompts = [self._prompt(p, a, b) for p, a, b in items]
        if self.config.method == "score":
            keys = [k for k in CHOICES if k != "tie" or self.config.allow_tie]
            table = predictor.score(prompts, [CHOICES[k] for k in keys])
            out: list[Verdict | None] = []
            for row in table:
                best = max(range(len(keys)), key=row.__getitem__)
                reason = "log-likelihood of each choice: " + ", ".join(
                    f"{CHOICES[k]} {ll:.3f}" for k, ll in zip(keys, row))
                out.append(Verdict(keys[best], reason))
            return out
        replies = predictor.generate(prompts, max_new_tokens=self.config.max_new_tokens)
        verdicts: list[Verdict | None] = []
        for reply in replies:
            m = _CHOICE.search(reply)
            verdicts.append(Verdict(m.group(1).lower(), f"judge replied {reply!r}") if m else None)
        return verdicts


@dataclass
class LoglikJudgeConfig(LocalModelJudgeConfig):
    normalize: bool = True
    """Compare the mean log-probability per token (true) or the total (false, favours short answers)."""
    tie_margin: float = 0.0
    """A difference at most this large (in the compared log-probability) is a tie."""


class LoglikJudge(_LocalModelJudge):
    """The answer the judge model finds more likely as the reply to the request wins."""

    name = "loglik"
    Config = LoglikJudgeConfig

    def judge_batch(self, items: Sequence[tuple[list[Message], str, str]]) -> list[Verdict | None]:
        if not items:
            return []
        predictor = self._ready()
        prompts = [list(p) for p, _, _ in items for _ in (0, 1)]
        replies = [r for _, a, b in items for r in (a, b)]
        scores = predictor.loglik(prompts, replies)
        out: list[Verdict | None] = []
        unit = "mean log-prob per token" if self.config.normalize else "total log-prob"
        for i in range(len(items)):
            (la, na), (lb, nb) = scores[2 * i], scores[2 * i + 1]
            sa, sb = (la / na, lb / nb) if self.config.normalize else (la, lb)
            winner = "tie" if abs(sa - sb) <= self.config.tie_margin else ("a" if sa > sb else "b")
            out.append(Verdict(winner, f"{unit}: a {sa:.4f} ({na} tokens), b {sb:.4f} ({nb} tokens)"))
        return out
