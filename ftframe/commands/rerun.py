"""``ftframe rerun RUN_DIR [--output DIR] [--tolerance T]``: run a recorded job again and compare the results.

The job is rebuilt from the run's ``manifest.json`` (its resolved config, seed and torch thread count),
so it needs neither the original command line nor Hydra. Before running it warns about everything
that could change the numbers: input files whose content hash differs (or that are gone), package
versions, machine and git commit. Afterwards it compares every metric — exactly, or within
``--tolerance`` — and the adapter weights when both runs exported one. Exit status 0: every metric
matches; 1: some differ; 2: the run dir cannot be used.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from ftframe.errors import FtframeError
from ftframe.io import sha256_file, write_json


class RerunError(FtframeError):
    """The run dir holds no usable manifest."""


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "manifest.json"
    if not path.is_file():
        raise RerunError(f"{run_dir}: no manifest.json. Pass a run dir a job wrote "
                         f"(outputs/<task>/<time> or a sweep's numbered sub-dir).")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RerunError(f"{path}: not valid JSON ({exc}); the run may have been killed while writing it.") from exc
    if not isinstance(manifest.get("config"), dict):
        raise RerunError(f"{path}: has no 'config' (the resolved run config); it cannot be re-executed.")
    return manifest


def input_changes(manifest: dict[str, Any]) -> list[str]:
    """Inputs whose content differs from the recorded hash, or that are gone."""
    out = []
    for name, recorded in (manifest.get("inputs") or {}).items():
        path = Path(name)
        if not path.is_file():
            out.append(f"input {name}: missing (recorded sha256 {recorded[:12]}…)")
        elif (now := sha256_file(path)) != recorded:
            out.append(f"input {name}: content changed (sha256 {recorded[:12]}… recorded, {now[:12]}… now)")
    return out


def compare_values(recorded: dict[str, Any], now: dict[str, Any], tolerance: float) -> list[dict[str, Any]]:
    """One row per metric: ``match`` is ``exact``, ``within tolerance`` or ``differs``."""
    rows = []
    for name in list(recorded) + [n for n in now if n not in recorded]:
        a, b = recorded.get(name), now.get(name)
        if a == b:
            match = "exact"
        elif isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) <= tolerance:
            match = "within tolerance"
        else:
            match = "differs"
        diff = b - a if isinstance(a, int | float) and isinstance(b, int | float) else None
        rows.append({"metric": name, "recorded": a, "rerun": b, "diff": diff, "match": match})
    return rows


def compare_adapters(first: Path, second: Path) -> bool | None:
    """Whether two runs' adapter weights are bit-identical (None when either has none)."""
    a, b = first / "adapter" / "adapter_model.safetensors", second / "adapter" / "adapter_model.safetensors"
    if not (a.is_file() and b.is_file()):
        return None
    import torch
    from safetensors.torch import load_file

    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def run(args: argparse.Namespace) -> int:
    import torch
    from omegaconf import OmegaConf

    from ftframe.console import fmt, get_console
    from ftframe.engine.run import run as run_job
    from ftframe.manifest import compare_environment

    con = get_console()
    run_dir = Path(args.run_dir)
    manifest = read_manifest(run_dir)
    output = Path(args.output) if args.output else run_dir / f"rerun-{datetime.now():%Y-%m-%d_%H-%M-%S}"
    if (output / "manifest.json").exists():
        raise RerunError(f"{output} already holds a run; pass another --output.")

    warnings = input_changes(manifest) + compare_environment(manifest)
    for w in warnings:
        con.print(f"[yellow]warning:[/] {w}")
    cfg = OmegaConf.create(manifest["config"])
    threads = (manifest.get("machine") or {}).get("torch_threads")
    if cfg.get("threads") is None and threads and threads != torch.get_num_threads():
        con.print(f"using {threads} torch threads, as the recorded run did")
        torch.set_num_threads(int(threads))

    result = run_job(cfg, output)
    recorded = (manifest.get("metrics") or {}).get("values") or {}
    rows = compare_values(recorded, result.metrics.get("values") or {}, args.tolerance)
    adapters = compare_adapters(run_dir, output)
    same_status = result.status == manifest.get("status")
    ok = same_status and all(r["match"] != "differs" for r in rows) and adapters is not False

    from rich.table import Table

    table = Table(title=f"rerun of {run_dir} → {output}", title_justify="left")
    for col in ("metric", "recorded", "rerun", "diff", "match"):
        table.add_column(col)
    for r in rows:
        colour = {"exact": "green", "within tolerance": "yellow"}.get(r["match"], "red")
        table.add_row(r["metric"], fmt(r["recorded"]), fmt(r["rerun"]),
                      "" if r["diff"] is None else f"{r['diff']:+.2e}", f"[{colour}]{r['match']}[/]")
    con.print(table)
    con.print(f"status: recorded {manifest.get('status')}, rerun {result.status}"
              + ("" if adapters is None else f"; adapter weights {'identical' if adapters else 'DIFFER'}"))
    verdict = ("metrics match exactly" if ok and all(r["match"] == "exact" for r in rows)
               else f"metrics match within {args.tolerance}" if ok else "results DIFFER")
    con.print(("[green]" if ok else "[red]") + verdict + "[/]"
              + (f" ({len(warnings)} environment/input differences above)" if warnings else ""))
    write_json(output / "rerun.json", {"of": str(run_dir), "tolerance": args.tolerance, "ok": ok,
                                       "verdict": verdict, "metrics": rows, "adapter_identical": adapters,
                                       "status": {"recorded": manifest.get("status"), "rerun": result.status},
                                       "warnings": warnings})
    return 0 if ok else 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("rerun", help="re-execute a run from its manifest and check the metrics match")
    p.add_argument("run_dir", help="a run dir with manifest.json (a job's output folder)")
    p.add_argument("--output", help="where the new run writes (default: RUN_DIR/rerun-<time>)")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="largest absolute metric difference still counted as a match (default 0: exact)")
    p.set_defaults(func=run)
