"""The export stage: run exporter plugins on a trained model — at the end of a job, or later from a run dir.

``run_exporters`` is what the job's export stage calls; ``export_saved_run`` rebuilds the
:class:`~ftframe.api.ExportContext` of a finished run from its run dir (``ftframe export RUN_DIR
exporters=[merged,gguf]``) and records each new export in the run's ``manifest.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import ListConfig, OmegaConf

from ftframe import console as ui
from ftframe.api import ExportContext, TrainedModel
from ftframe.config.validate import exporter_problems
from ftframe.engine.saved_run import SavedRun, load_saved_run, read_run_dir
from ftframe.errors import ConfigError
from ftframe.io import write_json
from ftframe.manifest import now
from ftframe.plugins import Registry, get_plugin_manager


def run_exporters(ctx: ExportContext, exporters: Mapping[str, Any], registry: Registry, con: Any,
                  done: dict[str, Any]) -> dict[str, Any]:
    """Run each exporter in order, recording ``{name: {"paths", "verified", **details}}`` into ``done``.

    An exporter that raises (e.g. a verification mismatch) stops the stage; the exports finished before
    it stay recorded in ``done``, the failing one is not.
    """
    for name, opts in exporters.items():
        exporter = registry.create("exporter", name, opts)
        res = exporter.export(ctx)  # type: ignore[attr-defined]
        done[name] = {"paths": res.paths, "verified": res.verified, **res.details}
        con.print(f"[green]✓[/] {name}: {', '.join(res.paths)}"
                  + ("" if res.verified is None else f" (verified: {res.verified})"))
    return done


def saved_export_context(saved: SavedRun) -> ExportContext:
    """The :class:`ExportContext` a finished run's exporters saw, rebuilt from its run dir."""
    metrics = saved.metrics()
    m = saved.manifest
    kind = "adapter" if saved.weights == "adapter" else "full"
    trained = TrainedModel(predictor=saved.predictor(), model=saved.model, tokenizer=saved.tokenizer, kind=kind,
                           info=dict((m.get("metrics") or {}).get("train") or {}))
    return ExportContext(run_dir=saved.run_dir, trained=trained,
                         config=OmegaConf.to_container(saved.config, resolve=True),  # type: ignore[arg-type]
                         metrics=m.get("metrics") or {}, baseline_metrics=m.get("baseline_metrics"),
                         gate=m.get("gate") or {}, data=metrics.get("data") or {},
                         predictions=saved.predictions(), manifest=m)


def parse_exporter_overrides(overrides: Sequence[str], configured: Any) -> dict[str, Any]:
    """``["exporters=[merged,gguf]", "exporters.gguf.type=f16"]`` -> ``{name: options}``.

    Options start from the run's own ``exporters.<name>`` settings (``configured``), overridden on the
    command line; the exporter's ``Config`` validates them when it is created.
    """
    bad = [o for o in overrides if not o.startswith("exporters")]
    if bad:
        raise ConfigError(f"{bad[0]!r}: only exporters=[...] and exporters.NAME.KEY=VALUE can be given to export.")
    lists = [o for o in overrides if o.split("=", 1)[0] == "exporters"]
    dotted = [o for o in overrides if o not in lists]
    try:
        given = OmegaConf.from_dotlist(lists[-1:]).get("exporters") if lists else None
        options = OmegaConf.from_dotlist(dotted).get("exporters") if dotted else OmegaConf.create({})
    except Exception as exc:  # omegaconf raises several grammar errors; all mean "cannot parse this"
        raise ConfigError(f"cannot parse {' '.join(overrides)!r}: {exc}") from exc
    if given is not None and not isinstance(given, ListConfig):
        raise ConfigError(f"{lists[-1]!r}: expected a list, e.g. exporters=[merged,gguf].")
    names = [str(n) for n in given] if given is not None else list(options.keys())
    if given is None and not names:
        raise ConfigError("name the exporters to run, e.g. `ftframe export RUN_DIR exporters=[merged,gguf]`.")
    if not names:
        raise ConfigError("exporters=[] names no exporter; e.g. exporters=[merged,gguf].")
    stray = [str(k) for k in options if str(k) not in names]
    if stray:
        raise ConfigError(f"exporters.{stray[0]}.* is set but {stray[0]!r} is not in exporters={names}; add it.")
    out: dict[str, Any] = {}
    for name in names:
        base = (configured or {}).get(name) or {}
        extra = options.get(name)
        merged = OmegaConf.merge(OmegaConf.create(base), extra or {})
        out[str(name)] = OmegaConf.to_container(merged)
    return out


def export_saved_run(run_dir: str | Path, overrides: Sequence[str], *, pm: Any = None,
                     con: Any = None) -> dict[str, Any]:
    """Run the exporters named in ``overrides`` on a finished run and record them in its manifest."""
    pm = pm or get_plugin_manager()
    con = con or ui.get_console()
    registry = Registry(pm)
    _, config, _ = read_run_dir(run_dir)
    exporters = parse_exporter_overrides(overrides, config.get("exporters"))
    for name in exporters:
        registry.get("exporter", name)  # an unknown name fails before any work
    checked = config.copy()
    checked.exporters = exporters
    problems = exporter_problems(checked, registry)  # what a job's validation would refuse, before loading
    if problems:
        raise ConfigError("\n".join(problems))
    saved = load_saved_run(run_dir, pm=pm)
    ctx = saved_export_context(saved)
    con.print(f"loaded {saved.run_dir} ({saved.weights} weights from {saved.weights_path})")
    done: dict[str, Any] = {}
    try:
        run_exporters(ctx, exporters, registry, con, done)
    finally:
        saved.release()
        if done:
            for entry in done.values():
                entry["exported"] = now()
            saved.manifest.setdefault("exports", {}).update(done)
            write_json(saved.run_dir / "manifest.json", saved.manifest)
    return done
