#!/usr/bin/env python3
"""The GPU check: the code paths that only a CUDA machine runs, each as a short ftframe run, in one table.

Every check is ``python -m ftframe +task=triage`` on the embedded SmolLM2-135M-Instruct with
``transforms.sample=64`` examples, one epoch, and no quality gate (a few steps teach the model little):

* ``qlora-4bit``: ``backend=qlora`` (bitsandbytes NF4 base, bf16 compute) on one GPU, adapter exported;
* ``lora-bf16-packing-sdpa``: ``backend=lora`` in ``bf16-true`` with packed batches under sdpa attention,
  exported as an adapter and merged, both verified against the in-memory model;
* ``lora-bf16-packing-flash``: flash-attention, where the ``flash_attn`` package is installed;
* ``ddp-all-gpus``: ``trainer=multi_gpu_ddp`` (Lightning's DDP over every GPU of the machine);
* ``full-bf16-merged``: ``backend=full`` in ``bf16-true``, exported merged and verified.

Each check's config is composed and validated first (``ftframe validate``'s checks), on any machine.
Without CUDA every check is then reported as ``no CUDA device: skipped`` and the script exits 0; with
CUDA each runs and its row says pass/fail (exit status 0, manifest status ``succeeded``, every export
verified), the training throughput (``metrics.json`` → ``train.tokens_per_second``) and the peak GPU
memory of training (``train.peak_gpu_memory``: ``torch.cuda.max_memory_allocated`` of rank 0). Exit
status 1 when a check fails::

    python scripts/gpu_check.py                          # every check, run dirs under /tmp/ftframe-gpu-check
    python scripts/gpu_check.py --only qlora-4bit --markdown gpu_check.md
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GiB = 1024**3
SKIPPED_NO_CUDA = "no CUDA device: skipped"
COMMON = ("+task=triage", "transforms.sample=64", "backend.epochs=1", "gate.macro_f1=0", "eval.limit=32",
          "trainer.enable_progress_bar=false")
"""Every check: the embedded model, 64 examples (38 trained: 5 steps of the task's batch of 8), no gate."""


@dataclass
class Check:
    name: str
    what: str
    overrides: tuple[str, ...]
    needs: tuple[str, ...] = ()
    """Python packages the check needs beyond ftframe's own (skipped without them)."""
    unsupported: str | None = None
    """Why ftframe cannot run this check at all (reported, never run)."""


CHECKS = (
    Check("qlora-4bit", "QLoRA, bitsandbytes NF4 base, bf16 compute",
          ("backend=qlora", "backend.precision=bf16-true", "trainer=gpu", "exporters=[adapter]"), needs=("bitsandbytes",)),
    Check("lora-bf16-packing-sdpa", "LoRA bf16-true, packed batches, sdpa; adapter + merged export",
          ("backend=lora", "backend.precision=bf16-true", "backend.packing=true", "backend.attention=sdpa",
           "trainer=gpu", "exporters=[adapter,merged]")),
    Check("lora-bf16-packing-flash", "LoRA bf16-true, packed batches, flash-attention",
          ("backend=lora", "backend.precision=bf16-true", "backend.packing=true", "trainer=gpu"), needs=("flash_attn",),
          unsupported="ftframe trains with eager or sdpa attention only (backend.attention); flash-attention "
                      "has no packed kernel in ftframe.engine.packing"),
    Check("ddp-all-gpus", "LoRA bf16-true, DDP over every GPU (trainer=multi_gpu_ddp)",
          ("backend=lora", "backend.precision=bf16-true", "trainer=multi_gpu_ddp", "exporters=[adapter]")),
    Check("full-bf16-merged", "full fine-tuning bf16-true; merged export",
          ("backend=full", "backend.precision=bf16-true", "trainer=gpu", "exporters=[merged]")),
)


@dataclass
class Row:
    check: str
    what: str
    result: str = "pass"
    tokens_per_second: float | None = None
    peak_gpu_memory: int | None = None
    exports: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="/tmp/ftframe-gpu-check", help="run dirs go to OUT/<check>")
    p.add_argument("--only", action="append", choices=[c.name for c in CHECKS], help="run only this check (repeatable)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per check")
    p.add_argument("--markdown", help="also write the table to this file")
    p.add_argument("--json", help="also write the rows as JSON to this file")
    return p.parse_args(argv)


def overrides(check: Check, run_dir: Path) -> list[str]:
    return [*COMMON, *check.overrides, f"hydra.run.dir={run_dir}"]


def config_problems(check: Check, run_dir: Path, registry: Any) -> list[str]:
    """What ``ftframe validate`` finds in the check's config (nothing loads; runs on any machine)."""
    from ftframe.config.compose import compose
    from ftframe.config.validate import problems

    args = overrides(check, run_dir)
    return problems(compose(args, registry=registry), registry, args)


def cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_check(check: Check, run_dir: Path, timeout: int) -> Row:
    """Run the check's ftframe job and read its manifest."""
    row = Row(check.name, check.what)
    cmd = [sys.executable, "-m", "ftframe", *overrides(check, run_dir)]
    print("$ " + " ".join(["python", *cmd[1:]]), flush=True)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        row.result, row.note = "fail", f"timed out after {timeout} s"
        return row
    (run_dir.parent / f"{check.name}.log").write_text(proc.stdout + proc.stderr)
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    train = (manifest.get("metrics") or {}).get("train") or {}
    row.tokens_per_second = train.get("tokens_per_second")
    row.peak_gpu_memory = train.get("peak_gpu_memory")
    row.exports = {name: e.get("verified") for name, e in (manifest.get("exports") or {}).items()}
    world = train.get("world_size")
    notes = [f"{time.perf_counter() - start:.0f} s"] + ([f"world size {world}"] if world else [])
    if proc.returncode != 0 or manifest.get("status") != "succeeded":
        row.result = "fail"
        error = manifest.get("error") or (proc.stderr.strip().splitlines() or ["no output"])[-1]
        notes.append(f"exit {proc.returncode}, status {manifest.get('status')}: {error[:200]}")
    elif any(v is False for v in row.exports.values()):
        row.result = "fail"
        notes.append("an export failed verification")
    row.note = "; ".join(notes)
    return row


def check_rows(checks: list[Check], out: Path, timeout: int) -> tuple[list[Row], int]:
    """Validate every check, then run those this machine can run; returns the rows and the exit status."""
    from ftframe.plugins import Registry, get_plugin_manager

    registry = Registry(get_plugin_manager())
    devices = cuda_devices()
    rows: list[Row] = []
    for check in checks:
        run_dir = out / check.name
        found = config_problems(check, run_dir, registry)
        if found:
            rows.append(Row(check.name, check.what, "fail", note="config: " + " | ".join(found)))
        elif not devices:
            rows.append(Row(check.name, check.what, "skipped", note=f"config valid; {SKIPPED_NO_CUDA}"))
        elif missing := [m for m in check.needs if importlib.util.find_spec(m) is None]:
            rows.append(Row(check.name, check.what, "skipped", note=f"{', '.join(missing)} not installed"))
        elif check.unsupported:
            rows.append(Row(check.name, check.what, "skipped", note=check.unsupported))
        else:
            rows.append(run_check(check, run_dir, timeout))
    return rows, int(any(r.result == "fail" for r in rows))


def table(rows: list[Row]) -> str:
    lines = ["| check | what | result | tokens/s | peak GPU memory | exports verified | note |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        tps = f"{r.tokens_per_second:,.0f}" if r.tokens_per_second is not None else "-"
        peak = f"{r.peak_gpu_memory / GiB:.2f} GiB" if r.peak_gpu_memory is not None else "-"
        exports = ", ".join(f"{k}: {v}" for k, v in r.exports.items()) or "-"
        lines.append(f"| {r.check} | {r.what} | {r.result} | {tps} | {peak} | {exports} | {r.note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checks = [c for c in CHECKS if not args.only or c.name in args.only]
    devices = cuda_devices()
    print(f"CUDA devices: {devices}" + ("" if devices else " (each check is validated, then skipped)"), flush=True)
    rows, status = check_rows(checks, out, args.timeout)
    text = table(rows)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in rows], indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
