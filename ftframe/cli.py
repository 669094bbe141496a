"""``python -m ftframe``: load plugins, store their schemas, pre-check the overrides, then @hydra.main.

The job itself is :func:`ftframe.engine.run.run`; this module only wraps it for Hydra.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ftframe.config.compose import compose, config_dir, task_choice
from ftframe.config.plugin_options import store_schemas
from ftframe.errors import FtframeError
from ftframe.plugins import Registry, get_plugin_manager, show_warnings_plainly


def precheck(argv: list[str], registry: Registry) -> None:
    """Compose each job's overrides once before Hydra runs, so config mistakes get a friendly message.

    Hydra prints composition errors without the "did you mean" a user needs; composing here first is
    cheap (no weights, no data) and keeps one error format for every entry point.
    """
    if any(a in ("-h", "--help", "--hydra-help", "--info", "--cfg", "-c", "--resolve") or a.startswith("--info")
           for a in argv):
        return
    overrides = [a for a in argv if not a.startswith("-")]
    cells = [overrides]
    if any(a in ("-m", "--multirun") for a in argv):
        cells = _cells(overrides)
    from ftframe.config.validate import problems
    from ftframe.errors import ConfigError

    found: dict[str, None] = {}
    for cell in cells:  # every cell of a small sweep (e.g. backend=lora,qlora,full) is checked before any runs
        where = "" if len(cells) == 1 else f"cell {' '.join(o for o in cell if o not in overrides)}: "
        try:
            found.update((where + p, None) for p in problems(compose(cell, registry=registry), registry, cell))
        except ConfigError as exc:
            found.update((where + p, None) for p in exc.problems)
    if found:
        raise ConfigError(list(found))


MAX_PRECHECKED_CELLS = 64
"""A sweep with more cells is pre-checked value by value (each swept value once, the others at their first)."""


def _cells(overrides: list[str]) -> list[list[str]]:
    """The override lists of a command-line sweep's cells (``a=1,2 b=x,y``: four), or, above
    ``MAX_PRECHECKED_CELLS``, one list per swept value."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = [[o.input_line] if not o.is_sweep_override() else
               [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] for o in parsed]
    total = 1
    for c in choices:
        total *= len(c)
    if total <= MAX_PRECHECKED_CELLS:
        return [list(cell) for cell in itertools.product(*choices)]
    firsts = [c[0] for c in choices]
    return [firsts] + [[*firsts[:i], v, *firsts[i + 1:]] for i, c in enumerate(choices) for v in c[1:]]


def _sweep_job(cfg: DictConfig, hc: Any, pm: Any) -> float | None:
    """One cell of a multirun: skip it when already finished; record a failure and let the sweep go on.

    Returns the task's primary metric (what the Optuna sweeper optimises), None for a failed cell.
    The exit status of the whole sweep comes from the report callback (``ftframe.report.SweepReport``),
    which reads every cell's manifest — the same way for in-process, joblib and SLURM jobs.
    """
    from ftframe.engine.run import run
    from ftframe.manifest import now
    from ftframe.sweep import find_finished, record_failure, resolved_config, set_aside_other_config

    run_dir = Path(hc.runtime.output_dir)
    overrides = list(hc.overrides.task)
    try:
        config = resolved_config(cfg)
    except Exception:  # noqa: BLE001 — an unresolvable config fails below, in run(), where it is recorded
        config = None
    done = find_finished(hc.sweep.dir, overrides, config) if config is not None else None
    if done is not None:
        print(f"skipping {' '.join(overrides) or 'cell'}: already {done.status} in {done.run_dir}")
        return done.primary_value
    if config is not None and (moved := set_aside_other_config(run_dir, config)) is not None:
        print(f"an earlier attempt in {run_dir} had another config: moved to {moved}")
    (run_dir / "manifest.json").unlink(missing_ok=True)  # an earlier attempt's; this one writes its own
    started = now()
    try:
        result = run(cfg, run_dir, pm=pm)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 — any error fails this cell only; it is recorded
        print(f"error: cell {' '.join(overrides)} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        record_failure(run_dir, cfg, exc, started)
        return None
    value = result.metrics.get("values", {}).get(str(cfg.task.primary_metric))
    return float(value) if isinstance(value, int | float) else None


def main() -> None:
    show_warnings_plainly()
    try:
        pm = get_plugin_manager()
        registry = Registry(pm)
        store_schemas(registry)
        sys.argv[1:] = task_choice(sys.argv[1:])  # +task=NAME selects the task group as task=NAME does
        precheck(sys.argv[1:], registry)
    except FtframeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
    def job(cfg: DictConfig) -> float | None:
        # Only a job imports the engine stack (torch, transformers, Lightning): composing, checking and
        # printing a config (--cfg, --help, the pre-check) stay light and quick.
        from ftframe.quiet import quiet_third_party

        quiet_third_party()
        from ftframe.engine.run import run

        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            return _sweep_job(cfg, hc, pm)
        try:
            result = run(cfg, Path(hc.runtime.output_dir), pm=pm)
        except FtframeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(exc.exit_code) from None
        if not result.ok:
            raise SystemExit(1)
        values = result.metrics.get("values", {})
        return values.get(str(cfg.task.primary_metric))

    job()


if __name__ == "__main__":
    main()
