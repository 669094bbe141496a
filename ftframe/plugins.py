"""The plugin manager and the registry of plugin classes.

``get_plugin_manager()`` builds a *fresh* manager per call (no module-level state): it loads every
``ftframe`` entry point, honours ``FTFRAME_DISABLE_PLUGINS`` (comma-separated entry-point names) and
``FTFRAME_TRACE_PLUGINS=1`` (print every hook call), and checks each plugin against the specs with
pluggy's own validation. A plugin that fails to import, implements a hook that does not exist or takes
an argument its hook does not pass is *broken*: it is left out of the manager and recorded with the reason
(distribution, file and line, the closest hook name or the valid arguments), so ``ftframe plugins`` can
still list the others; ``Registry`` then refuses to serve a job (a job never runs with a plugin silently
missing). A registered module that implements no hook gets a :class:`PluginWarning`.
``Registry`` turns the registry hooks into ``kind -> name -> class`` and refuses two plugins that claim
one name, naming both distributions.
"""

from __future__ import annotations

import importlib.metadata as md
import inspect
import os
import re
import sys
import traceback
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy
from pluggy import PluginValidationError

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


class PluginWarning(UserWarning):
    """A plugin that loads but is likely not what its author meant (e.g. it implements no hook)."""


@dataclass
class PluginInfo:
    """One loaded, blocked or broken plugin module and the distribution that ships it."""

    name: str
    distribution: str
    version: str
    module: str
    blocked: bool = False
    provides: dict[str, list[str]] = field(default_factory=dict)
    problem: str | None = None
    """Why the plugin is broken (left out of the manager); ``None`` when it is not."""
    hooks: int = 0
    """How many hook implementations it registered."""

    @property
    def label(self) -> str:
        """``'name' (distribution version)`` for messages; ``'name' (in process)`` for one registered by code."""
        who = f"{self.distribution} {self.version}".strip()
        return f"{self.name!r} {who}" if who.startswith("(") else f"{self.name!r} ({who})"

    @property
    def status(self) -> str:
        """``loaded``, ``blocked``, ``broken`` or ``no hooks``."""
        if self.blocked:
            return "blocked"
        if self.problem:
            return "broken"
        return "loaded" if self.hooks else "no hooks"

    def broken_message(self) -> str:
        """The whole explanation of a broken plugin, with how to run without it."""
        return (f"Plugin {self.label} is broken: {self.problem} Fix or uninstall it, or run without it: "
                f"FTFRAME_DISABLE_PLUGINS={self.name}.")


def show_warnings_plainly() -> None:
    """Print :class:`PluginWarning` as ``warning: <message>`` (the console commands call this; the default
    format shows a source line of ftframe that means nothing to a user)."""
    default = warnings.formatwarning

    def fmt(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> str:
        if issubclass(category, PluginWarning):
            return f"warning: {message}\n"
        return default(message, category, *args, **kwargs)

    warnings.formatwarning = fmt  # type: ignore[assignment]


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
        if pm.is_registered(plugin):
            continue  # an installed plugin's module, already loaded from its entry point
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        _register(pm, plugin, PluginInfo(name, "(in process)", "", name))
    pm.check_pending()  # every plugin was checked on its own in _register; broken ones are not registered
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
                info.problem = f"importing {ep.value} failed{_where_raised(exc)}: {type(exc).__name__}: {exc}."
                continue
            _register(pm, module, info)


def _register(pm: pluggy.PluginManager, plugin: Any, info: PluginInfo) -> None:
    """Register ``plugin`` if pluggy's validation accepts it; otherwise record in ``info`` why not.

    pluggy checks a hookimpl's arguments against its spec in ``register`` and unknown hook names in
    ``check_pending``; both raise ``PluginValidationError`` for the whole manager, with the plugin's repr.
    Checking each plugin as it is registered tells which one it was, and the message says where and what
    to write instead."""
    pm.ftframe_infos[info.name] = info  # type: ignore[attr-defined]
    try:
        if pm.register(plugin, name=info.name) is None:
            info.blocked = True  # FTFRAME_DISABLE_PLUGINS names an in-process plugin
            return
    except PluginValidationError as exc:
        info.problem = _invalid_hookimpl(pm, plugin, exc)
        return
    try:
        pm.check_pending()
    except PluginValidationError:
        info.problem = _unknown_hooks(pm, plugin)
        pm.unregister(plugin)
        return
    info.hooks = len(pm.get_hookcallers(plugin) or [])
    if not info.hooks:
        where = getattr(plugin, "__file__", None) or f"{info.module} ({type(plugin).__qualname__})"
        warnings.warn(PluginWarning(
            f"Plugin {info.label} registers {where}, which implements no ftframe hook (no function marked "
            f"@ftframe.hookimpl), so it provides nothing: mark its hook functions with @ftframe.hookimpl, or "
            f"remove the entry point."), stacklevel=2)


def _where(function: Any) -> str:
    """``file:line`` of a function's definition (its first decorator: the ``@hookimpl`` line)."""
    function = inspect.unwrap(function)
    code = getattr(function, "__code__", None)
    if code is None:
        return repr(function)
    return f"{inspect.getsourcefile(function) or code.co_filename}:{code.co_firstlineno}"


def _where_raised(exc: BaseException) -> str:
    """`` at file:line`` of the innermost frame of ``exc`` outside the import machinery."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "importlib" not in f.filename and not f.filename.startswith("<frozen")]
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" at {exc.filename}:{exc.lineno}"
    return f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def _hook_names() -> list[str]:
    return sorted(n for n in vars(hookspecs) if n.startswith("ftframe_") and n not in hookspecs.DEPRECATED_ALIASES)


def _impls_of(pm: pluggy.PluginManager, plugin: Any) -> dict[str, Any]:
    """Hook name -> the function ``plugin`` marks as its implementation (what pluggy would register)."""
    found = {}
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is not None:
            found[opts.get("specname") or attr] = getattr(plugin, attr)
    return found


def _unknown_hooks(pm: pluggy.PluginManager, plugin: Any) -> str:
    """What ``check_pending`` refused: hook implementations whose name is no ftframe hook."""
    from ftframe.config.errors import did_you_mean

    out = []
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.has_spec():
            continue
        impl = next(i for i in caller.get_hookimpls() if i.plugin is plugin)
        if impl.optionalhook:
            continue
        hint = did_you_mean(caller.name, _hook_names()) or f" (the hooks are: {', '.join(_hook_names())})"
        out.append(f"{_where(impl.function)}: {caller.name}() is not an ftframe hook{hint}.")
    return " ".join(out)


def _invalid_hookimpl(pm: pluggy.PluginManager, plugin: Any, exc: PluginValidationError) -> str:
    """What ``register`` refused, in our words: the file and line, the hook, the arguments it passes."""
    from ftframe.config.errors import did_you_mean

    first = str(exc).splitlines()[0] if str(exc) else ""
    m = re.search(r"hook '(\w+)'", first)
    hook_name = m.group(1) if m else ""
    function = _impls_of(pm, plugin).get(hook_name)
    caller = getattr(pm.hook, hook_name, None)
    if function is None or caller is None or caller.spec is None:
        return f"pluggy refused it: {' '.join(str(exc).split())}."
    spec_args = [*caller.spec.argnames, *caller.spec.kwargnames]
    # pluggy compares the arguments without a default (its ``argnames``) with the spec's
    params = [p for p in inspect.signature(function).parameters.values() if p.name != "self"]
    taken = [p.name for p in params if p.default is inspect.Parameter.empty
             and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    extra = [a for a in taken if a not in spec_args]
    head = f"{_where(function)}: {hook_name}({', '.join(p.name for p in params)})"
    if not extra:  # another of pluggy's checks (wrappers, historic hooks)
        return f"{head}: {' '.join(str(exc).splitlines()[-1].split())}."
    hints = "".join(did_you_mean(a, spec_args) for a in extra)
    takes = (f"{hook_name} passes only {', '.join(spec_args)}; an implementation takes any of them, by name."
             if spec_args else f"{hook_name} passes no arguments: define it as {hook_name}().")
    return f"{head} takes {', '.join(repr(a) for a in extra)}, which the hook does not pass{hints}. {takes}"


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


def broken_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """The plugins left out of ``pm`` because they are broken (see :func:`get_plugin_manager`)."""
    return [i for i in pm.ftframe_infos.values() if i.problem]  # type: ignore[attr-defined]


def _refusal(broken: list[PluginInfo]) -> str:
    if len(broken) == 1:
        return broken[0].broken_message() + " A job does not start while a plugin is broken."
    return (f"{len(broken)} plugins are broken; a job does not start while a plugin is broken:\n"
            + "\n".join(f"  - {info.broken_message()}" for info in broken))


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
    """``kind -> name -> plugin class``, collected from the registry hooks of one plugin manager.

    Refuses (:class:`PluginError`) a manager with a broken plugin, naming each one and how to run without
    it, and a plugin whose registry hook fails. ``allow_broken=True`` (``ftframe plugins``) records such
    plugins as broken instead and collects what the others provide."""

    def __init__(self, pm: pluggy.PluginManager, *, allow_broken: bool = False):
        self.pm = pm
        self.classes: dict[str, dict[str, type[Plugin]]] = {kind: {} for kind in PLUGIN_KINDS}
        self.owner: dict[tuple[str, str], str] = {}
        broken = broken_plugins(pm)
        if broken and not allow_broken:
            raise PluginError(_refusal(broken))
        for kind, base in PLUGIN_KINDS.items():
            hook_name = f"ftframe_{kind}s"
            names = [hook_name] + [old for old, new in hookspecs.DEPRECATED_ALIASES.items() if new == hook_name]
            for called, impl in ((n, i) for n in names for i in getattr(pm.hook, n).get_hookimpls()):
                if allow_broken:
                    try:
                        self._collect(kind, base, called, impl)
                    except PluginError as exc:
                        info = pm.ftframe_infos.get(pm.get_name(impl.plugin))  # type: ignore[attr-defined]
                        if info is None:
                            raise
                        info.problem = re.sub(r"^Plugin \S+ \([^)]*\):? ", "", str(exc))
                    continue
                self._collect(kind, base, called, impl)

    def _collect(self, kind: str, base: type[Plugin], called: str, impl: Any) -> None:
        """The classes one implementation of a registry hook returns."""
        pm = self.pm
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
