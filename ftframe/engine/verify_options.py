"""The options and the error of export verification (:mod:`ftframe.engine.verify`), apart from its torch code,
so the weight exporters' ``Config`` schemas import without torch."""

from __future__ import annotations

from dataclasses import dataclass

from ftframe.errors import FtframeError


class VerificationFailed(FtframeError):
    """The reloaded artefact does not behave like the in-memory model."""


@dataclass
class VerifyOptions:
    """Verification options shared by the weight exporters (their ``Config`` classes inherit these)."""

    verify_prompts: int = 4
    """How many test-split prompts the reloaded artefact is checked on (logits and greedy output)."""
    verify_tokens: int = 16
    """Greedy tokens generated per prompt for the output comparison."""
