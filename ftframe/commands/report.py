"""``ftframe report SWEEP_DIR``: rebuild a matrix's results tables and plot from the run dirs on disk."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def run(args: argparse.Namespace) -> int:
    from ftframe.report import print_report, write_report

    report = write_report(Path(args.sweep_dir))
    print_report(report)
    return 1 if report.failed and args.strict else 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="aggregate a multirun's sweep dir into results.{csv,md,html,png}")
    p.add_argument("sweep_dir", help="the sweep dir (hydra.sweep.dir), e.g. multirun/triage/2026-01-31_12-00-00")
    p.add_argument("--strict", action="store_true", help="exit 1 when a run in it failed or did not finish")
    p.set_defaults(func=run)
