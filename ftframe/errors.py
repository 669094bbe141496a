"""Exceptions for user errors: the CLI prints them as one clear message, never a bare traceback."""

from __future__ import annotations


class FtframeError(Exception):
    """A user-facing error: its message says what is wrong, where, and what to do."""

    exit_code = 2


class ConfigError(FtframeError):
    """One or more configuration problems, all collected before raising."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        head = "Invalid configuration:" if len(self.problems) > 1 else "Invalid configuration: "
        body = "\n".join(f"  - {p}" for p in self.problems) if len(self.problems) > 1 else self.problems[0]
        super().__init__(head + ("\n" if len(self.problems) > 1 else "") + body)


class PluginError(FtframeError):
    """A plugin could not be loaded, is ambiguous, or misbehaved."""


class DataError(FtframeError):
    """Input data is missing, unreadable or malformed (the message names file and line)."""


class GateFailed(FtframeError):
    """The tuned model fell below a threshold of the task's gate."""

    exit_code = 1


class NoVerdict(DataError):
    """A judge has no verdict for a pair (e.g. a human-labels file that does not contain it)."""


class InsufficientMemory(FtframeError):
    """Training would not fit in the memory available (the memory preflight's estimate)."""
