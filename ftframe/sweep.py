"""A sweep dir on disk: its runs, which cells are finished, and failures recorded so a matrix goes on.

A multirun writes one run dir per cell below ``hydra.sweep.dir``; each holds ``manifest.json`` (status,
config, metrics) and Hydra's ``.hydra/overrides.yaml``. Everything here reads those files only, so it
works for any launcher (in-process, joblib workers, SLURM jobs) and after the fact.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ftframe.io import write_json

FINISHED = ("succeeded", "gate_failed")
"""Statuses a re-run of the sweep keeps; any other (failed, interrupted, running = killed) runs again."""


@dataclass
class RunRecord:
    """One cell of a sweep as found on disk."""

    run_dir: Path
    manifest: dict[str, Any]
    overrides: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.manifest.get("status") or "unknown")

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest.get("config") or {}

    @property
    def values(self) -> dict[str, Any]:
        """The headline metric values (``metrics.values`` of the manifest)."""
        return dict((self.manifest.get("metrics") or {}).get("values") or {})

    @property
    def primary_metric(self) -> str | None:
        return (self.config.get("task") or {}).get("primary_metric")

    @property
    def primary_value(self) -> float | None:
        value = self.values.get(self.primary_metric or "")
        return float(value) if isinstance(value, int | float) else None


def _json_roundtrip(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The config as the manifest stores it (resolved, JSON types), for comparing cells."""
    return _json_roundtrip(OmegaConf.to_container(cfg, resolve=True))


def _read_overrides(run_dir: Path, manifest: dict[str, Any]) -> list[str]:
    hydra_file = run_dir / ".hydra" / "overrides.yaml"
    if hydra_file.is_file():
        loaded = OmegaConf.load(hydra_file)
        return [str(x) for x in loaded] if isinstance(loaded, list) or OmegaConf.is_list(loaded) else []
    return list((manifest.get("hydra") or {}).get("overrides") or [])


def read_run(run_dir: Path) -> RunRecord | None:
    """The run in ``run_dir``, or None when it holds no readable run manifest."""
    path = run_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or "status" not in manifest or "config" not in manifest:
        return None  # e.g. an exporter's manifest inside an output folder
    return RunRecord(run_dir, manifest, _read_overrides(run_dir, manifest))


def scan(sweep_dir: str | Path) -> list[RunRecord]:
    """Every run below ``sweep_dir``, in job order (numeric sub-dir names first, then by name)."""
    sweep_dir = Path(sweep_dir)
    found = [r for p in sweep_dir.rglob("manifest.json") if (r := read_run(p.parent)) is not None]
    dirs = {r.run_dir for r in found}
    # A run inside another run's dir (e.g. ``ftframe rerun``'s default output) is not a cell of the sweep.
    runs = [r for r in found if not any(parent in dirs for parent in r.run_dir.parents)]

    def order(r: RunRecord) -> tuple[int, int, str]:
        rel = r.run_dir.relative_to(sweep_dir).as_posix()
        return (0, int(rel), rel) if rel.isdigit() else (1, 0, rel)

    return sorted(runs, key=order)


def find_finished(sweep_dir: str | Path, overrides: list[str], config: dict[str, Any]) -> RunRecord | None:
    """A finished run of this cell: the same override set and the same resolved config.

    The override set finds the cell even when the job order changed; the config check re-runs a cell
    whose code defaults or input paths changed since.
    """
    wanted = sorted(overrides)
    for record in scan(sweep_dir):
        if record.finished and sorted(record.overrides) == wanted and _json_roundtrip(record.config) == config:
            return record
    return None


def set_aside_other_config(run_dir: Path, config: dict[str, Any]) -> Path | None:
    """Move an earlier attempt with a *different* config out of the way, into ``run_dir/superseded/N/``.

    A cell re-run with the same config keeps its files (training resumes from ``checkpoints/last.ckpt``);
    one whose config changed must not resume from, or be confused with, the old attempt's files.
    """
    record = read_run(run_dir)
    if record is None or _json_roundtrip(record.config) == config:
        return None
    target = run_dir / "superseded" / str(len(list((run_dir / "superseded").glob("*"))))
    target.mkdir(parents=True)
    for entry in run_dir.iterdir():
        if entry.name not in (".hydra", "superseded"):
            entry.rename(target / entry.name)
    return target


def record_failure(run_dir: Path, cfg: DictConfig, exc: BaseException, started: str) -> None:
    """Make sure ``run_dir/manifest.json`` says this attempt failed, with the error and its traceback.

    ``run()`` writes its manifest once the config is valid; an error before that (or in a hook after)
    would otherwise leave no record, or an earlier attempt's.
    """
    from ftframe.manifest import new_manifest, now

    path = run_dir / "manifest.json"
    record = read_run(run_dir)
    if record is not None and str(record.manifest.get("started") or "") >= started:
        manifest = record.manifest
    else:
        try:
            config: dict[str, Any] = resolved_config(cfg)
        except Exception:  # noqa: BLE001 — an unresolvable config is itself a common cause of the failure
            config = _json_roundtrip(OmegaConf.to_container(cfg, resolve=False))
        manifest = new_manifest(config, int(cfg.get("seed") or 0))
        manifest["started"] = started
    manifest.update(status="failed", error=manifest.get("error") or f"{type(exc).__name__}: {exc}",
                    traceback="".join(traceback.format_exception(exc)), finished=manifest.get("finished") or now())
    write_json(path, manifest)
