"""``ftframe monitor LOG [--against RUN]``: health and drift of served traffic, from the request log.

Reads LOG and its rotated files (LOG.1 ...): latency p50/p95/p99 per variant, status and error codes, the
error rate, the share of prompts longer than RUN's training maximum, and the drift score between served
prompts (content logging on) and RUN's training prompts. Each threshold failed exits 1.
``--draw-golden FILE --size N`` also writes N logged prompts (sampled at random) with the champion's
answers as chat JSONL: candidates to review and correct before using them as a golden set.
Exit status: 0 healthy, 1 a threshold failed, 2 unusable input. See docs/lifecycle.md.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def parse_since(value: str | None) -> datetime | None:
    """``24h``/``30m``/``7d`` (before now) or an ISO 8601 time (UTC when it names no zone)."""
    from ftframe.lifecycle import LifecycleError

    if not value:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", value)
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: float(m.group(1))})
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise LifecycleError(f"--since {value!r}: expected a duration (30m, 24h, 7d) or an ISO time "
                             f"(2026-01-31T12:00).") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    from ftframe import console as ui
    from ftframe.io import write_json
    from ftframe.lifecycle.monitor import draw_golden, monitor, print_monitor, training_side
    from ftframe.lifecycle.request_log import read_request_log

    con = ui.get_console()
    log = read_request_log(args.log, since=parse_since(args.since))
    for problem in log.problems[:5]:
        con.print(f"[yellow]warning:[/] unreadable line {problem}")
    if len(log.problems) > 5:
        con.print(f"[yellow]warning:[/] {len(log.problems) - 5} more unreadable lines")
    against = training_side(args.against, registry_uri=args.registry) if args.against else None
    report = monitor(log.records, against, max_p95_ms=args.max_p95_ms, max_error_rate=args.max_error_rate,
                     max_too_long=args.max_too_long, max_drift=args.max_drift, alpha=args.alpha,
                     permutations=args.permutations, seed=args.seed)
    print_monitor(report, con, args.log)
    if args.out:
        write_json(Path(args.out), {**report.to_json(), "log": [str(f) for f in log.files],
                                    "unreadable_lines": log.problems})
        con.print(f"report: {args.out}")
    if args.draw_golden:
        n = draw_golden(log.records, Path(args.draw_golden), size=args.size, seed=args.seed, variant=args.variant)
        con.print(f"wrote {n} golden-set candidates to {args.draw_golden} (review and correct every answer before "
                  f"using it as eval.golden; both variants' answers are in "
                  f"{Path(args.draw_golden).with_name(Path(args.draw_golden).stem + '.sources.jsonl')})")
    return 0 if report.ok else 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("monitor", help="health and drift of served traffic from a request log",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("log", metavar="LOG", help="the request log ftframe serve writes (rotated files are read too)")
    p.add_argument("--against", metavar="RUN", help="the run dir (or models:/NAME@alias) whose training data and "
                   "maximum length the traffic is checked against")
    p.add_argument("--since", help="only requests since then: 30m, 24h, 7d, or an ISO time")
    p.add_argument("--max-p95-ms", type=float, help="alert above this p95 latency of served answers (default: none)")
    p.add_argument("--max-error-rate", type=float, default=0.05, help="alert above this share of 5xx/429 answers "
                   "(default 0.05)")
    p.add_argument("--max-too-long", type=float, default=0.05, help="alert above this share of prompts over the "
                   "training maximum (default 0.05)")
    p.add_argument("--max-drift", type=float, default=0.05, help="alert above this drift score when significant "
                   "(default 0.05)")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level of the drift test (default 0.01)")
    p.add_argument("--permutations", type=int, default=200, help="permutations of the drift test (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="FILE", help="also write the report as JSON")
    p.add_argument("--draw-golden", metavar="FILE", help="write golden-set candidates drawn from the log (chat JSONL)")
    p.add_argument("--size", type=int, default=300, help="how many candidates to draw (default 300)")
    p.add_argument("--variant", default="champion", choices=("champion", "challenger"),
                   help="whose answers the candidates carry (default: champion)")
    p.add_argument("--registry", metavar="URI", help="the MLflow registry for a models:/ URI")
    p.set_defaults(func=run)
