"""User-given split files (``split.files.train/val/test``): those splits are read from their own files (with
the data format and options of ``data``); the splits without a file are cut from ``data.path`` by their
shares, renormalised among themselves (e.g. ``split.files.test`` with train 0.7 / val 0.1 gives
train 0.875 / val 0.125 of ``data.path``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ftframe.api import Example, LoadedData, Rejected
from ftframe.engine.splits import split_examples
from ftframe.errors import ConfigError

SPLITS = ("train", "val", "test")


def make_splits(examples: Sequence[Example], *, shares: dict[str, float], files: dict[str, str | None], seed: int,
                stratify: bool, load: Callable[[str, str], LoadedData]
                ) -> tuple[dict[str, list[Example]], list[Rejected], list[Path], dict[str, Any]]:
    """``(splits, rejected rows of the split files, files read, info for the manifest)``. ``load(path, key)``
    reads a split file; ``key`` (``split.files.test``) is the config key its errors name."""
    given = {name: path for name, path in files.items() if path}
    unknown = set(given) - set(SPLITS)
    if unknown:
        raise ConfigError(f"split.files: unknown split(s) {sorted(unknown)}; use train, val or test.")
    if not given:
        return (split_examples(examples, seed=seed, stratify=stratify, **shares), [], [],
                {"source": "data.path", "shares": shares})
    rest = [name for name in SPLITS if name not in given]
    if not rest:
        raise ConfigError("split.files sets train, val and test, so data.path would go unused: point data.path at "
                          "the training file and leave split.files.train unset.")
    total = sum(shares[n] for n in rest)
    renorm = {n: (shares[n] / total if total else float(n == "train")) for n in rest}
    if not any(renorm.values()):
        raise ConfigError(f"split: the splits without a file ({', '.join(rest)}) all have share 0, so data.path "
                          f"would go unused.")
    cut = split_examples(examples, seed=seed, stratify=stratify,
                         **{n: renorm.get(n, 0.0) for n in SPLITS})
    splits = {n: cut[n] for n in rest}
    rejected: list[Rejected] = []
    read: list[Path] = []
    for name, path in given.items():
        loaded = load(path, f"split.files.{name}")
        splits[name] = list(loaded.examples)
        rejected += loaded.rejected
        read += loaded.files
    info = {"source": "data.path + split.files", "files": given, "shares_of_data_path": renorm}
    return {n: splits[n] for n in SPLITS}, rejected, read, info
