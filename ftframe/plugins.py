"""The plugin manager and the registry of plugin classes.

``get_plugin_manager()`` builds a *fresh* manager per call (no module-level state): it loads every
``ftframe`` entry point, honours ``FTFRAME_DISABLE_PLUGINS`` (comma-separated entry-point names) and
``FTFRAME_TRACE_PLUGINS=1`` (print every hook call), and checks that implementations match the specs.
``Registry`` turns the registry hooks into ``kind -> name -> class`` and refuses two plugins that claim
one name, naming both distributions.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ftframe import hookspecs
from ftframe.api import PLUGIN_KINDS, Plugin
from ftframe.errors import PluginError

ENTRY_POINT_GROUP = "ftframe"
hookimpl = pluggy.HookimplMarker("ftframe")

GROUP_OF_KIND = {
    "data_format": "data",
    "model_source": "model",
    "backend": "backend",
    "metric": "metrics",
    "judge": "judges",
    "exporter": "exporters",
}
"""Plugin kind -> the config group that selects it."""


@dataclass
class PluginInfo:
    """One loaded (or blocked) plugin module and the distribution that ships it."""

    name: str
    distribution: str
    version: str
    module: str
    blocked: bool = False
    provides: dict[str, list[str]] = field(default_factory=dict)


def disabled_plugins() -> set[str]:
    return {n.strip() for n in os.environ.get("FTFRAME_DISABLE_PLUGINS", "").split(",") if n.strip()}


def get_plugin_manager(plugins: Iterable[Any] = (), *, entry_points: bool = True) -> pluggy.PluginManager:
    """A new plugin manager with the entry-point plugins (unless disabled) plus ``plugins``."""
    pm = pluggy.PluginManager("ftframe")
    pm.add_hookspecs(hookspecs)
    pm.ftframe_infos = {}  # type: ignore[attr-defined]  # name -> PluginInfo, for `ftframe plugins`
    blocked = disabled_plugins()
    for name in blocked:
        pm.set_blocked(name)
    if entry_points:
        _load_entry_points(pm, blocked)
    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        pm.register(plugin, name=name)
        pm.ftframe_infos[name] = PluginInfo(name, "(in process)", "", name)  # type: ignore[attr-defined]
    pm.check_pending()
    if os.environ.get("FTFRAME_TRACE_PLUGINS", "") not in ("", "0"):
        _enable_tracing(pm)
    return pm


def _load_entry_points(pm: pluggy.PluginManager, blocked: set[str]) -> None:
    # Our own loop rather than pm.load_setuptools_entrypoints: a duplicate name or a failing import
    # must name the distributions involved, which pluggy's loader does not.
    for dist in md.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP:
                continue
            dist_name = dist.metadata["Name"] or "?"
            infos = pm.ftframe_infos  # type: ignore[attr-defined]
            if ep.name in infos and not infos[ep.name].blocked:
                if infos[ep.name].distribution == dist_name:
                    continue  # the same distribution seen twice on sys.path (editable installs)
                raise PluginError(
                    f"Two distributions register the ftframe plugin {ep.name!r}: "
                    f"{infos[ep.name].distribution} and {dist_name}. Uninstall one of them, or block one "
                    f"with FTFRAME_DISABLE_PLUGINS."
                )
            info = PluginInfo(ep.name, dist_name, dist.version, ep.value, blocked=ep.name in blocked)
            infos[ep.name] = info
            if info.blocked:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must say who it is
                raise PluginError(
                    f"Plugin {ep.name!r} from distribution {dist_name} {dist.version} failed to import "
                    f"({ep.value}): {type(exc).__name__}: {exc}. Fix or uninstall it, or set "
                    f"FTFRAME_DISABLE_PLUGINS={ep.name} to run without it."
                ) from exc
            pm.register(module, name=ep.name)


def _enable_tracing(pm: pluggy.PluginManager) -> None:
    pm.ftframe_trace = True  # type: ignore[attr-defined]  # the Registry calls impls one by one
    def before(hook_name: str, impls: list, kwargs: dict) -> None:
        print(f"[ftframe trace] {hook_name}({kwargs}) -> {[i.plugin_name for i in impls]}", file=sys.stderr)

    def after(outcome: Any, hook_name: str, impls: list, kwargs: dict) -> None:
        try:
            result = outcome.get_result()
        except BaseException as exc:  # noqa: BLE001 - only reporting it
            result = f"raised {exc!r}"
        print(f"[ftframe trace] {hook_name} returned {result!r}", file=sys.stderr)

    pm.add_hookcall_monitoring(before, after)


def plugin_label(pm: pluggy.PluginManager, plugin: Any) -> str:
    """``name (distribution version)`` for messages."""
    name = pm.get_name(plugin) or repr(plugin)
    info = pm.ftframe_infos.get(name)  # type: ignore[attr-defined]
    return f"{name} ({f'{info.distribution} {info.version}'.strip()})" if info else name


def call_hook(pm: pluggy.PluginManager, name: str, **kwargs: Any) -> list[Any]:
    """Call every implementation of hook ``name`` (pluggy's order), collecting non-None results.

    One implementation at a time, so that one that raises is reported with its plugin name and
    distribution instead of as a bare traceback from inside pluggy.
    """
    results = []
    for impl in reversed(getattr(pm.hook, name).get_hookimpls()):
        owner = plugin_label(pm, impl.plugin)
        try:
            result = impl.function(*[kwargs[a] for a in impl.argnames])
        except Exception as exc:
            raise PluginError(f"Plugin {owner} raised in {name}(): {type(exc).__name__}: {exc}") from exc
        if getattr(pm, "ftframe_trace", False):
            print(f"[ftframe trace] {name}({', '.join(impl.argnames)}) from {owner} returned {result!r}",
                  file=sys.stderr)
        if result is not None:
            results.append(result)
    return results


class Registry:
    """``kind -> name -> plugin class``, collected from the registry hooks of one plugin manager."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self.classes: dict[str, dict[str, type[Plugin]]] = {kind: {} for kind in PLUGIN_KINDS}
        self.owner: dict[tuple[str, str], str] = {}
        for kind, base in PLUGIN_KINDS.items():
            hook_name = f"ftframe_{kind}s"
            names = [hook_name] + [old for old, new in hookspecs.DEPRECATED_ALIASES.items() if new == hook_name]
            for called, impl in ((n, i) for n in names for i in getattr(pm.hook, n).get_hookimpls()):
                owner = plugin_label(pm, impl.plugin)
                try:
                    returned = impl.function()  # one impl at a time, to know who returned what
                except Exception as exc:
                    raise PluginError(f"Plugin {owner} raised in {called}(): "
                                      f"{type(exc).__name__}: {exc}") from exc
                if getattr(pm, "ftframe_trace", False):
                    print(f"[ftframe trace] {called}() from {owner} returned {returned!r}", file=sys.stderr)
                if returned is not None and not isinstance(returned, (list, tuple)):
                    raise PluginError(f"Plugin {owner}: {called}() must return a list of classes, "
                                      f"got {returned!r}.")
                for cls in returned or ():
                    self._add(kind, base, cls, owner)
                name = pm.get_name(impl.plugin)
                info = pm.ftframe_infos.get(name)  # type: ignore[attr-defined]
                if info is not None:
                    info.provides.setdefault(kind, []).extend(c.name for c in returned or ())

    def _add(self, kind: str, base: type[Plugin], cls: type[Plugin], owner: str) -> None:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"Plugin {owner} returned {cls!r} from ftframe_{kind}s(); expected a subclass "
                              f"of ftframe.api.{base.__name__}.")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"Plugin {owner}: {cls.__qualname__} has no `name` class attribute.")
        if name in self.classes[kind]:
            raise PluginError(
                f"Two plugins provide the {kind.replace('_', ' ')} {name!r}: {self.owner[(kind, name)]} "
                f"and {owner}. Uninstall one, or block one with FTFRAME_DISABLE_PLUGINS."
            )
        self.classes[kind][name] = cls
        self.owner[(kind, name)] = owner

    def names(self, kind: str) -> list[str]:
        return sorted(self.classes[kind])

    def get(self, kind: str, name: str) -> type[Plugin]:
        try:
            return self.classes[kind][name]
        except KeyError:
            from ftframe.config.errors import did_you_mean

            raise PluginError(
                f"No {kind.replace('_', ' ')} named {name!r}{did_you_mean(name, self.names(kind))}. "
                f"Available: {', '.join(self.names(kind)) or '(none)'}. `ftframe plugins` lists what is "
                f"installed."
            ) from None

    def create(self, kind: str, name: str, options: Any = None) -> Plugin:
        """Instantiate plugin ``name`` with ``options`` validated against its ``Config``."""
        from ftframe.config.plugin_options import build_config

        cls = self.get(kind, name)
        return cls(build_config(cls, options, key=f"{GROUP_OF_KIND[kind]}"))
