"""Training throughput of the default ``make run`` job (triage, LoRA on the last 12 layers).

Runs ``python -m ftframe +task=triage`` for a few optimizer steps (no baseline, a 4-example test) and
reports the engine's own ``tokens_per_second`` (prompt + reply tokens, no padding, per second of
``trainer.fit``), median of ``--repeats`` runs. ``--repo`` runs another checkout of ftframe (e.g. a git
worktree of an older commit) with this venv, to compare before/after a change in one sitting.

    .venv/bin/python scripts/bench/train_throughput.py --steps 15 --repeats 3 [--repo /tmp/old] [-- overrides]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def one_run(repo: Path, steps: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="ftframe-bench-") as tmp:
        env = dict(os.environ, PYTHONPATH=f"{repo}{os.pathsep}{repo / 'plugins'}")
        cmd = [sys.executable, "-m", "ftframe", "+task=triage", "eval.baseline=false", f"backend.max_steps={steps}",
               "eval.limit=4", "trainer.enable_progress_bar=false", "exporters=[]", f"hydra.run.dir={tmp}", *extra]
        proc = subprocess.run(cmd, check=False, cwd=repo, env=env, stdout=subprocess.DEVNULL)
        metrics = Path(tmp) / "metrics.json"  # written also when the gate fails (a few steps rarely pass it)
        if not metrics.is_file():
            raise SystemExit(f"the run failed (exit {proc.returncode}): {' '.join(cmd)}")
        return json.loads(metrics.read_text())["train"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    rates = []
    for i in range(args.repeats):
        info = one_run(args.repo.resolve(), args.steps, args.overrides)
        rates.append(info["tokens_per_second"])
        print(f"run {i + 1}: {info['tokens_per_second']} tokens/s ({info['trained_tokens']} tokens, "
              f"{info['train_seconds']} s, {info['steps']} steps)", flush=True)
    print(f"median: {statistics.median(rates):.1f} tokens/s over {len(rates)} runs ({args.repo})")


if __name__ == "__main__":
    main()
