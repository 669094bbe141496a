"""Every ftframe hook, in the style of pytest's hookspec.py: ``ftframe_`` prefix, typed, documented.

A plugin is a module (or object) with functions marked ``@ftframe.hookimpl`` whose names match these
specs, registered through the ``ftframe`` entry-point group::

    [project.entry-points.ftframe]
    myplugin = "ftframe_myplugin.plugin"

An implementation may accept any subset of a hook's arguments; hooks evolve by adding arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ftframe.api import Backend, DataFormat, Exporter, Judge, Metric, ModelSource

hookspec = pluggy.HookspecMarker("ftframe")


# ---------------------------------------------------------------------------------------- registries
# Each returns plugin *classes*; the host instantiates them with their validated ``Config``.


@hookspec
def ftframe_data_formats() -> Sequence[type[DataFormat]]:
    """Data formats this plugin provides (``data=<name>``).

    Example::

        @hookimpl
        def ftframe_data_formats():
            return [MyCsvFormat]
    """


@hookspec
def ftframe_model_sources() -> Sequence[type[ModelSource]]:
    """Model sources this plugin provides (``model=<name>``)."""


@hookspec
def ftframe_backends() -> Sequence[type[Backend]]:
    """Training backends this plugin provides (``backend=<name>``)."""


@hookspec
def ftframe_metrics() -> Sequence[type[Metric]]:
    """Metrics this plugin provides (``metrics=[<name>,...]``)."""


@hookspec
def ftframe_judges() -> Sequence[type[Judge]]:
    """Judges this plugin provides (used by preference metrics)."""


@hookspec
def ftframe_exporters() -> Sequence[type[Exporter]]:
    """Exporters this plugin provides (``exporters=[<name>,...]``)."""


# ----------------------------------------------------------------------------------------- decisions


@hookspec(firstresult=True)
def ftframe_detect_data_format(path: Path) -> str | None:
    """Name of the data format that reads ``path``, or ``None`` to let other plugins decide.

    The first non-``None`` answer wins (``data=auto``).
    """


# ----------------------------------------------------------------------------------------- observers


@hookspec
def ftframe_lightning_callbacks(config: Any) -> Sequence[Any]:
    """Extra Lightning callbacks for a local training run (``config`` is the resolved run config)."""


@hookspec
def ftframe_run_finished(config: Any, result: Any) -> None:
    """Called once a run has finished (succeeded, gate failed or failed) with its ``RunResult``."""


# ---------------------------------------------------------------------------------------- deprecated
# A retired hook keeps working for one minor version: pluggy warns (``warn_on_impl``) when a plugin
# implements it, pointing at the plugin's file and line, and the host still uses what it returns.
# ``DEPRECATED_ALIASES`` maps each retired hook to the hook that replaces it.

DEPRECATED_ALIASES = {"ftframe_formats": "ftframe_data_formats"}


@hookspec(warn_on_impl=DeprecationWarning(
    "The ftframe_formats hook is deprecated and will be removed in ftframe 1.0: rename your "
    "implementation to ftframe_data_formats (same arguments, same return value)."))
def ftframe_formats() -> Sequence[type[DataFormat]]:
    """Deprecated name of :func:`ftframe_data_formats`; still honoured, with a ``DeprecationWarning``."""
