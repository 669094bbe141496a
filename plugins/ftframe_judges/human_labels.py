"""``human_labels``: verdicts a person gave, read from a JSONL or CSV file of pairs.

Each row: ``prompt`` (the request: a string, or a chat ``messages`` list whose last user message is
used), ``a`` and ``b`` (the two answers), ``winner`` (``a``, ``b`` or ``tie``) and optionally ``reason``
and ``annotator``. A pair asked for in the other order is answered with the verdict mirrored. A pair
not in the file has no verdict (counted as unjudged, never guessed).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from ftframe.api import Judge, Message, Rejected, Verdict
from ftframe.config import one_of
from ftframe.errors import DataError, NoVerdict

WINNERS = ("a", "b", "tie")
MIRROR = {"a": "b", "b": "a", "tie": "tie"}


@dataclass
class HumanLabelsConfig:
    path: str = MISSING
    """JSONL (one object per line) or CSV (header ``prompt,a,b,winner[,reason,annotator]``) of verdicts."""
    on_error: str = "raise"
    """A bad row: ``raise`` (stop, naming file and line) or ``skip`` (kept with its reason in ``rejected``)."""

    def __post_init__(self) -> None:
        one_of("judge_options.on_error", self.on_error, ("raise", "skip"))


def request_text(prompt: Any) -> str:
    """The request a verdict is about: a string as is, or the last user message of a conversation."""
    if isinstance(prompt, str):
        return prompt.strip()
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return users[-1].strip()
    raise ValueError("prompt must be a string or a list of chat messages with a user message")


class HumanLabels(Judge):
    """Verdicts from a file of human-labelled pairs; every verdict keeps the annotator's reason."""

    name = "human_labels"
    Config = HumanLabelsConfig

    def __init__(self, config: Any = None):
        super().__init__(config)
        self.rejected: list[Rejected] = []
        self.verdicts: dict[tuple[str, str, str], tuple[Verdict, str]] = {}
        self._load(Path(self.config.path))

    def _rows(self, path: Path) -> list[tuple[str, Any]]:
        if not path.is_file():
            raise DataError(f"judge_options.path: file not found: {path}.")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".csv":
            return [(f"{path}:{n}", row) for n, row in enumerate(csv.DictReader(text.splitlines()), start=2)]
        out: list[tuple[str, Any]] = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append((f"{path}:{n}", json.loads(line)))
            except json.JSONDecodeError as exc:
                out.append((f"{path}:{n}", ValueError(f"not valid JSON ({exc.msg})")))
        return out

    def _load(self, path: Path) -> None:
        for source, row in self._rows(path):
            try:
                key, verdict = self._parse(row)
            except ValueError as exc:
                self._reject(source, str(exc), row)
                continue
            known = self.verdicts.get(key)
            if known is not None and known[0].winner != verdict.winner:
                self._reject(source, f"contradicts the verdict {known[0].winner!r} for the same pair at {known[1]}",
                             row)
                continue
            self.verdicts[key] = (verdict, source)
        if not self.verdicts:
            raise DataError(f"{path}: no usable verdicts ({len(self.rejected)} rows rejected"
                            + (f"; first: {self.rejected[0].source}: {self.rejected[0].reason}" if self.rejected else "")
                            + "). Each row needs prompt, a, b and winner (a, b or tie).")

    def _reject(self, source: str, reason: str, row: Any) -> None:
        if self.config.on_error == "raise":
            raise DataError(f"{source}: {reason}. Fix the row, or set judge_options.on_error=skip to leave it out.")
        self.rejected.append(Rejected(source, reason, None if isinstance(row, Exception) else row))

    @staticmethod
    def _parse(row: Any) -> tuple[tuple[str, str, str], Verdict]:
        if isinstance(row, Exception):
            raise ValueError(str(row))
        if not isinstance(row, dict):
            raise ValueError(f"expected an object with prompt, a, b, winner; got {type(row).__name__}")
        missing = [k for k in ("prompt", "a", "b", "winner") if row.get(k) in (None, "")]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        if not isinstance(row["a"], str) or not isinstance(row["b"], str):
            raise ValueError("a and b must be strings (the two answers)")
        winner = str(row["winner"]).strip().lower()
        if winner not in WINNERS:
            raise ValueError(f"winner {row['winner']!r} is not one of a, b, tie")
        reason = str(row.get("reason") or "").strip()
        if row.get("annotator"):
            reason = f"{row['annotator']}: {reason}" if reason else str(row["annotator"])
        key = (request_text(row["prompt"]), row["a"].strip(), row["b"].strip())
        return key, Verdict(winner, reason or "human label")

    def judge(self, prompt: list[Message], a: str, b: str) -> Verdict:
        request = request_text(prompt)
        found = self.verdicts.get((request, a.strip(), b.strip()))
        if found is not None:
            return Verdict(found[0].winner, f"{found[0].reason} ({found[1]})")
        found = self.verdicts.get((request, b.strip(), a.strip()))
        if found is not None:
            return Verdict(MIRROR[found[0].winner], f"{found[0].reason} ({found[1]}, labelled in the other order)")
        raise NoVerdict(f"{self.config.path}: no verdict for this pair of answers to {request[:60]!r}.")
