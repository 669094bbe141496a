"""``ftframe compare A B [--data GOLDEN] [--max-loss Q=MARGIN ...]``: may challenger B replace champion A?

A and B: run dirs, ``models:/NAME@alias`` (the Model Registry), ``ftframe eval`` output folders, or (B)
a provider model ``BACKEND:MODEL_ID`` (e.g. ``openai:gpt-4.1-mini``, options with ``--provider-option``).
``--log LOG`` compares the champion's and the challenger's answers on the same logged requests instead
(shadow serving with content logging), with gold answers from ``--data``.

Both sides are scored on the same examples with the task metrics of A, each with a paired bootstrap
interval of B − A; per-class/per-field deltas, the flipped examples and a preference metric (a judge)
where A's config has one. Writes comparison.{md,html,json,png} and flips.jsonl to ``--out``.
Exit status: 0 B may replace A, 1 B must not (the reasons are printed), 2 unusable input.
See docs/lifecycle.md.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a value that parses as JSON (a number, true/false, null) is taken as such."""
    from ftframe.lifecycle import LifecycleError

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LifecycleError(f"--provider-option {item!r}: expected KEY=VALUE, e.g. base_url=http://127.0.0.1:8000/v1.")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def build_comparison(a_spec: str | None, b_spec: str | None, args: argparse.Namespace, out: Path,
                     console: Any) -> Any:
    """Open both sides, pair their predictions and analyse them (see :mod:`ftframe.lifecycle.compare`)."""
    from ftframe import console as ui
    from ftframe.lifecycle import LifecycleError
    from ftframe.lifecycle.compare import (
        analyse,
        check_same_task,
        evaluate_side,
        open_side,
        pair_up,
        parse_max_loss,
        parse_require,
        reference_config,
        sides_from_log,
    )
    from ftframe.plugins import Registry, get_plugin_manager

    if not 0 < args.confidence < 1:
        raise LifecycleError(f"--confidence must be in (0, 1), got {args.confidence}.")
    if args.resamples < 100:
        raise LifecycleError(f"--resamples must be at least 100, got {args.resamples}.")
    max_loss, require = parse_max_loss(args.max_loss or []), parse_require(args.require or [])
    registry = Registry(get_plugin_manager())
    data = Path(args.data) if args.data else None
    if getattr(args, "log", None):
        a, b, how = sides_from_log(Path(args.log), registry, config_spec=a_spec, data=data, registry_uri=args.registry)
        task = a.task
    else:
        assert a_spec is not None and b_spec is not None
        options = parse_options(args.provider_option)
        a = open_side("A", a_spec, registry, provider_options=options, registry_uri=args.registry)
        b = open_side("B", b_spec, registry, provider_options=options, registry_uri=args.registry)
        task = check_same_task(a, b)
        cfg = reference_config(a, b)
        how = pair_up(a, b, data=data, out=out, registry=registry,
                      predict=lambda side, file, examples, folder: evaluate_side(
                          side, file, examples, folder, cfg=cfg, registry=registry, task=task))
    cfg = reference_config(a, b)
    assert task is not None
    return analyse(a, b, task, cfg, registry, paired_on=how, out=out, resamples=args.resamples,
                   confidence=args.confidence, seed=args.seed, max_loss=max_loss, require=require,
                   strict=args.strict, require_improvement=args.require_improvement,
                   progress=lambda label, total: ui.progress_bar(console, label, total))


def run(args: argparse.Namespace) -> int:
    from ftframe import console as ui
    from ftframe.lifecycle import LifecycleError
    from ftframe.lifecycle.compare_report import print_comparison, write_comparison

    sides = list(args.sides)
    if args.log:
        if len(sides) > 1:
            raise LifecycleError("With --log, name at most one run (whose task, metrics and gate apply): "
                                 "ftframe compare --log LOG [RUN].")
        a_spec, b_spec = (sides[0] if sides else None), None
    elif len(sides) != 2:
        raise LifecycleError("ftframe compare needs two sides, A (the champion) and B (the challenger): "
                             "ftframe compare A B, or ftframe compare --log LOG.")
    else:
        a_spec, b_spec = sides
    out = Path(args.out or f"outputs/compare/{datetime.now():%Y-%m-%d_%H-%M-%S}")
    con = ui.get_console()
    comp = build_comparison(a_spec, b_spec, args, out, con)
    write_comparison(comp, out)
    print_comparison(comp, con)
    return 0 if comp.accepted else 1


def add_gate_arguments(p: Any) -> None:
    """The comparison options ``ftframe compare`` and ``ftframe promote --compare`` share."""
    p.add_argument("--data", metavar="GOLDEN", help="evaluate both sides on this file (default: the test split both "
                   "runs saved predictions on)")
    p.add_argument("--max-loss", action="append", metavar="Q=MARGIN",
                   help="B may lose at most MARGIN on quantity Q (macro_f1=0.01), or on each row of a per_* group "
                        "(per_class=0.01: every class's F1); repeatable")
    p.add_argument("--strict", action="store_true", help="check --max-loss on the interval's pessimistic end "
                   "(non-inferiority shown), not on the point estimate")
    p.add_argument("--require", action="append", metavar="NAME>=X",
                   help="a threshold on B's value, e.g. preference_ci_low>=0.5 or accuracy>=0.8; repeatable")
    p.add_argument("--require-improvement", action="store_true",
                   help="refuse B unless it is significantly better on the primary metric")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--registry", metavar="URI", help="the MLflow registry for models:/ URIs (default: "
                   "$MLFLOW_TRACKING_URI, else sqlite:///outputs/registry/mlflow.db)")
    p.add_argument("--provider-option", action="append", metavar="KEY=VALUE",
                   help="an option of a provider side's backend, e.g. base_url=URL or api_key_env=NAME")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="compare a challenger with a champion (paired bootstrap, flips, gate)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sides", nargs="*", metavar="A B", help="champion and challenger: run dirs, models:/NAME@alias, "
                   "eval output folders, or BACKEND:MODEL_ID (a provider model)")
    p.add_argument("--log", metavar="LOG", help="compare the champion's and challenger's answers in a request log")
    p.add_argument("--out", help="output folder (default: outputs/compare/<time>)")
    add_gate_arguments(p)
    p.set_defaults(func=run)
