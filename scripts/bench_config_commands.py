"""Time the config-only commands against ``python -c "import torch"`` as whole subprocesses.

Each command runs N times (``--n``, default 5) in a fresh process from a temporary working directory;
the table shows the median wall time and the median peak RSS (``wait4``'s ``ru_maxrss``), and each
command's median as a ratio of the ``import torch`` median measured in the same script (the machine is
shared, so absolute numbers are noisy; the ratio is what to compare). Runs are interleaved (one of each
command per round) so a busy spell hurts all commands alike.

    python scripts/bench_config_commands.py [--n 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS: dict[str, list[str]] = {
    "ftframe validate +task=triage": [str(BIN / "ftframe"), "validate", "+task=triage"],
    "ftframe plugins": [str(BIN / "ftframe"), "plugins"],
    "python -m ftframe +task=triage --cfg job": [sys.executable, "-m", "ftframe", "+task=triage", "--cfg", "job"],
    'python -c "import torch"': [sys.executable, "-c", "import torch"],
}
PEER = 'python -c "import torch"'


def run_once(argv: list[str], cwd: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one run; a failing command stops the benchmark."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{err}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5, help="runs per command (median reported)")
    ap.add_argument("--json", type=Path, help="also write the raw timings here")
    args = ap.parse_args()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory() as cwd:
        for name, argv in COMMANDS.items():  # one warm-up each: page cache, .pyc files
            run_once(argv, cwd)
        for _ in range(args.n):
            for name, argv in COMMANDS.items():
                samples[name].append(run_once(argv, cwd))
    peer = statistics.median(w for w, _ in samples[PEER])
    print(f"median of {args.n} runs each (interleaved), after one warm-up run")
    print(f"| command | wall s (median) | min–max s | peak RSS MiB | vs import torch |")
    print("|---|---|---|---|---|")
    for name, runs in samples.items():
        walls = [w for w, _ in runs]
        wall, rss = statistics.median(walls), statistics.median(r for _, r in runs)
        print(f"| `{name}` | {wall:.2f} | {min(walls):.2f}–{max(walls):.2f} | {rss:.0f} | {wall / peer:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps(samples, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
