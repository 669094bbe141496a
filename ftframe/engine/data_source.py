"""Which data-format plugin reads ``data.path``: the one named by ``data.name``, or for ``data=auto``
the answer of the ``ftframe_detect_data_format`` hook (the first plugin to claim the file wins).

The path is checked first (:mod:`ftframe.preflight.input_paths`: exists, is a file or folder as the format
needs, readable, not empty), so the run, ``ftframe data check`` and ``ftframe validate`` say the same thing
about it; :func:`load_data` also turns an ``OSError`` met while reading into that message.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from ftframe.api import DataFormat, LoadedData
from ftframe.errors import DataError, FtframeError
from ftframe.preflight.input_paths import input_problem, os_error_message

AUTO = "auto"
PASSED_ON = ("on_error", "encoding")
"""Options of ``data=auto`` handed to the detected format (``encoding`` only where it has one and it is set)."""


@dataclass
class AutoDataConfig:
    """``data=auto``: detect the format from the file; the detected format's defaults apply."""

    name: str = AUTO
    path: str = MISSING
    """The file to read; its format is detected by the installed data-format plugins."""
    on_error: str = "raise"
    """Passed on to the detected format: ``raise`` or ``skip`` (rejected rows kept with reasons)."""
    encoding: str | None = None
    """Passed on to the detected format when set (e.g. ``latin-1``); unset: the format's default (utf-8)."""


def _folder_formats(registry: Any) -> list[str]:
    return [n for n, c in sorted(registry.classes["data_format"].items()) if getattr(c, "path_kind", "any") != "file"]


def detect(pm: Any, path: str, key: str = "data.path") -> str:
    """The data format that claims ``path``; a :class:`DataError` when ``path`` cannot be read or none does."""
    problem = input_problem(path, key, "any", records=True)
    if problem:
        raise DataError(problem)
    try:
        name = pm.hook.ftframe_detect_data_format(path=Path(path))
    except DataError as exc:
        raise DataError(f"data=auto: {exc}") from None
    if not name:
        if Path(path).is_dir():
            raise DataError(f"data=auto: {path}: no installed data format reads this folder; point {key} at a data "
                            f"file, or choose a format with data=<name> (`ftframe plugins` lists them).")
        raise DataError(f"data=auto: {path}: no installed data format recognises this file; choose one with "
                        f"data=<name> (`ftframe plugins` lists them).")
    return str(name)


def data_path_problem(cfg_data: Any, registry: Any, key: str = "data.path") -> str | None:
    """Why the format chosen by ``cfg_data`` cannot read its ``path`` (for ``data=auto``: why none can), or
    None. Reads at most a file's first bytes; creates no plugin."""
    if isinstance(cfg_data, DictConfig) and OmegaConf.is_missing(cfg_data, "path"):
        return None  # reported by the config checks
    name, path = cfg_data.get("name"), cfg_data.get("path")
    if not path:
        return None
    if name == AUTO:
        try:
            detect(registry.pm, str(path), key)
        except FtframeError as exc:
            return str(exc)
        return None
    cls = registry.classes["data_format"].get(str(name))
    if cls is None:
        return None  # an unknown format is reported by the config checks
    folders = [n for n in _folder_formats(registry) if n != name]
    return input_problem(str(path), key, getattr(cls, "path_kind", "any"), records=True,
                         folder_hint=f", or choose a format that reads folders ({', '.join(f'data={n}' for n in folders)})"
                         if folders else "")


def data_format(cfg_data: DictConfig, registry: Any, pm: Any, key: str = "data.path"
                ) -> tuple[DataFormat, str | None]:
    """The data-format plugin for ``cfg_data`` and, for ``data=auto``, the name that was detected. A path it
    cannot read is a :class:`DataError` naming ``key``."""
    if cfg_data.name != AUTO:
        problem = data_path_problem(cfg_data, registry, key)
        if problem:
            raise DataError(problem)
        return registry.create("data_format", str(cfg_data.name), cfg_data), None  # type: ignore[return-value]
    options = OmegaConf.to_container(cfg_data, resolve=True)
    detected = detect(pm, str(options["path"]), key)
    accepted = {f.name for f in fields(registry.get("data_format", detected).Config)}
    passed = {k: options[k] for k in PASSED_ON if options.get(k) is not None and k in accepted}
    plugin = registry.create("data_format", detected, {"path": options["path"], **passed})
    return plugin, detected  # type: ignore[return-value]


def load_data(cfg_data: DictConfig, registry: Any, pm: Any, key: str = "data.path") -> tuple[LoadedData, str | None]:
    """``(loaded data, detected format name or None)`` of ``cfg_data``'s path: :func:`data_format`, then its
    ``load()``. An ``OSError`` while reading, or a file without a single record, is a :class:`DataError`."""
    fmt, detected = data_format(cfg_data, registry, pm, key)
    path = cfg_data.get("path")
    try:
        loaded = fmt.load()
    except OSError as exc:
        raise DataError(os_error_message(exc, key, path)) from None
    if not loaded.examples and not loaded.rejected:
        raise DataError(f"{path}: no records in it; {key} must hold at least one record.")
    return loaded, detected
