"""Ensembles of finished runs (``ftframe eval RUN_A RUN_B RUN_C``): one classifier from several.

Each member scores the task's label set with its own predictor (LM-head label scoring or a
classification head, whatever its run trained); the scores are normalised over the labels per member and
averaged as log-probabilities, and the answer is the label with the highest mean. Members are loaded one at
a time and released after scoring, so an ensemble needs the memory of one model. Typical use: the same
recipe trained with several seeds (docs/evaluation.md, "Ensembles of runs").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ftframe.api import Message, Predictor
from ftframe.engine.saved_run import RunDirError, load_saved_run, read_run_dir, saved_task

Member = Callable[[], tuple[Predictor, Callable[[], None]]]
"""Opens one member: ``(predictor, release)``; ``release()`` frees its model."""


def ensemble_labels(run_dirs: Sequence[Path]) -> list[str]:
    """The label set every run in ``run_dirs`` shares (checked before any weights load).

    Raises :class:`RunDirError` naming the first run that is not a classification run or whose labels
    differ from the first run's."""
    labels: list[str] | None = None
    first: Path | None = None
    for run_dir in run_dirs:
        run_dir, config, _ = read_run_dir(run_dir)
        task = saved_task(run_dir, config)
        if task.type != "classification" or not task.labels:
            raise RunDirError(f"{run_dir}: an ensemble averages scores over a label set; this run's task "
                              f"{task.name!r} is {task.type!r}{'' if task.labels else ' without labels'}. "
                              f"Ensemble classification runs only.")
        if labels is None:
            labels, first = list(task.labels), run_dir
        elif sorted(task.labels) != sorted(labels):
            extra = sorted(set(task.labels) ^ set(labels))[:3]
            raise RunDirError(f"{run_dir}: its labels differ from {first}'s (e.g. {extra}); the members of an "
                              f"ensemble must be trained on the same label set.")
    if labels is None:
        raise RunDirError("An ensemble needs at least one run dir.")
    return labels


class EnsemblePredictor:
    """A :class:`ftframe.api.Predictor` averaging its members' label log-probabilities.

    ``score`` returns, for each prompt and candidate, the members' mean log-probability of that candidate
    (each member's scores normalised over the candidates first, so an LM head's sequence log-likelihoods
    become probabilities over the labels like a classification head's; the normalisation shifts a
    member's row by a constant, so it never changes the answer, only makes the scores comparable and
    interpretable); ``generate`` answers with the best label.
    """

    def __init__(self, members: Sequence[Member], labels: Sequence[str], *, name: str):
        if not members:
            raise ValueError("EnsemblePredictor needs at least one member")
        self.members = list(members)
        self.labels = list(labels)
        self.name = name

    def score(self, prompts: Sequence[list[Message]], candidates: Sequence[str], *,
              progress: Callable[[int], None] | None = None) -> list[list[float]]:
        k = len(self.members)
        advance = _Shared(progress, k) if progress else None
        total = torch.zeros((len(prompts), len(candidates)), dtype=torch.float64)
        for open_member in self.members:
            table = _member_scores(open_member, prompts, candidates, advance)
            total += torch.log_softmax(torch.tensor(table, dtype=torch.float64), dim=-1)
        return (total / k).tolist()

    def generate(self, prompts: Sequence[list[Message]], *, max_new_tokens: int,
                 progress: Callable[[int], None] | None = None) -> list[str]:
        table = torch.tensor(self.score(prompts, self.labels, progress=progress))
        return [self.labels[i] for i in table.argmax(-1).tolist()]


class _Shared:
    """One progress bar for the whole ensemble: ``k`` members' prompts advance it by whole prompts, so it
    ends exactly at the number of prompts."""

    def __init__(self, progress: Callable[[int], None], k: int):
        self.progress, self.k, self.units, self.shown = progress, k, 0, 0

    def __call__(self, n: int) -> None:
        self.units += n
        whole = self.units // self.k
        if whole > self.shown:
            self.progress(whole - self.shown)
            self.shown = whole


def _member_scores(open_member: Member, prompts: Sequence[list[Message]], candidates: Sequence[str],
                   progress: Callable[[int], None] | None) -> list[list[float]]:
    """One member's score table; its model is released (and unreferenced) before the next one loads."""
    predictor, release = open_member()
    try:
        return predictor.score(prompts, candidates, progress=progress)
    finally:
        release()


def saved_run_member(run_dir: Path, *, pm: Any = None, batch_size: int | None = None) -> Member:
    """A member that loads ``run_dir``'s tuned model when opened (its own predictor and eval settings)."""

    def open_member() -> tuple[Predictor, Callable[[], None]]:
        saved = load_saved_run(run_dir, pm=pm)
        return saved.predictor(batch_size=batch_size), saved.release

    return open_member
