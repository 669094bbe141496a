"""What every file-reading data format shares: its options and how a bad row is handled."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from ftframe.api import Rejected
from ftframe.config import one_of
from ftframe.errors import ConfigError, DataError
from ftframe.preflight.input_paths import input_problem, os_error_message


@dataclass
class FileConfig:
    path: str = MISSING
    """The input file (relative paths start at the current directory)."""
    on_error: str = "raise"
    """``raise``: stop at the first bad row; ``skip``: keep going, writing each rejected row with its
    reason to ``rejected.jsonl`` in the run dir."""
    encoding: str = "utf-8"
    """Text encoding of the file."""

    def __post_init__(self) -> None:
        one_of("data.on_error", self.on_error, ("raise", "skip"))
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ConfigError(f"data.encoding: unknown text encoding {self.encoding!r} (e.g. utf-8, latin-1).") from None


def require_names(config: object, fields: tuple[str, ...]) -> None:
    """Raise a :class:`ConfigError` naming the first of ``fields`` that is not a non-empty string."""
    for key in fields:
        value = getattr(config, key)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"data.{key}: must be a non-empty string, got {value!r}.")


def reject(config: FileConfig, where: str, why: str, raw: Any, rejected: list[Rejected],
           kind: str = "invalid") -> None:
    """Raise a :class:`DataError` for a bad row, or (``on_error=skip``) keep it with its reason and error
    type ``kind`` (counted by the preflight report)."""
    if config.on_error != "skip":
        raise DataError(f"{where}: {why}. Fix it, or set data.on_error=skip to reject bad rows "
                        f"(they are written to rejected.jsonl with their reasons).")
    rejected.append(Rejected(where, why, raw, kind))


def read_text(path: Path, encoding: str) -> str:
    """The whole file as text (BOM removed); a clear :class:`DataError` when missing, a folder, unreadable,
    empty or not decodable (the host's input-path messages, see ``ftframe.preflight.input_paths``)."""
    problem = input_problem(path, "data.path", "file", records=True)
    if problem:
        raise DataError(problem)
    try:
        return path.read_text(encoding=encoding).removeprefix("\ufeff")
    except OSError as exc:
        raise DataError(os_error_message(exc, "data.path", path)) from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid {encoding} text (byte {exc.start}: "
                        f"{exc.object[exc.start:exc.start + 1]!r}); re-save the file as UTF-8 or set "
                        f"data.encoding (e.g. data.encoding=latin-1).") from None
