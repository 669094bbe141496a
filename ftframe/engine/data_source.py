"""Which data-format plugin reads ``data.path``: the one named by ``data.name``, or for ``data=auto``
the answer of the ``ftframe_detect_data_format`` hook (the first plugin to claim the file wins)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from ftframe.api import DataFormat
from ftframe.errors import DataError

AUTO = "auto"


@dataclass
class AutoDataConfig:
    """``data=auto``: detect the format from the file; the detected format's defaults apply."""

    name: str = AUTO
    path: str = MISSING
    """The file to read; its format is detected by the installed data-format plugins."""
    on_error: str = "raise"
    """Passed on to the detected format: ``raise`` or ``skip`` (rejected rows kept with reasons)."""


def detect(pm: Any, path: str) -> str:
    """The data format that claims ``path``; a :class:`DataError` when none does."""
    name = pm.hook.ftframe_detect_data_format(path=Path(path))
    if not name:
        raise DataError(f"{path}: no installed data format recognises this file; choose one with "
                        f"data=<name> (`ftframe plugins` lists them).")
    return str(name)


def data_format(cfg_data: DictConfig, registry: Any, pm: Any) -> tuple[DataFormat, str | None]:
    """The data-format plugin for ``cfg_data`` and, for ``data=auto``, the name that was detected."""
    if cfg_data.name != AUTO:
        return registry.create("data_format", str(cfg_data.name), cfg_data), None  # type: ignore[return-value]
    options = OmegaConf.to_container(cfg_data, resolve=True)
    detected = detect(pm, str(options["path"]))
    plugin = registry.create("data_format", detected, {"path": options["path"], "on_error": options["on_error"]})
    return plugin, detected  # type: ignore[return-value]
