"""``ftframe validate [overrides] [--print]``: compose a config and report every problem at once."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ftframe.plugins import Registry, get_plugin_manager


def run(args: argparse.Namespace) -> int:
    """Compose the config and run every check (schemas, cross-field rules, files, plugins); load nothing."""
    from omegaconf import OmegaConf

    from ftframe.config.compose import compose
    from ftframe.config.validate import problems

    registry = Registry(get_plugin_manager())
    cfg = compose(args.overrides, registry=registry)
    found = problems(cfg, registry, args.overrides)  # what the command line gives is checked as explicit
    if found:
        print(f"{len(found)} problem(s):", file=sys.stderr)
        for p in found:
            print(f"  - {p}", file=sys.stderr)
        return 2
    if args.print:
        print(OmegaConf.to_yaml(cfg, resolve=True))
    print(f"OK: task {cfg.task.name} | model {cfg.model.name} | data {cfg.data.name} ({cfg.data.get('path')}) | "
          f"backend {cfg.backend.name} | metrics {', '.join(cfg.metrics)} | exporters {', '.join(cfg.exporters)}")
    return 0



def add_parser(sub: Any) -> None:
    va = sub.add_parser("validate", help="compose a config and check it, without loading weights or data")
    va.add_argument("overrides", nargs="*", help="as for python -m ftframe, e.g. +task=triage backend.lr=1e-3")
    va.add_argument("--print", action="store_true", help="also print the resolved config")
    va.set_defaults(func=run)
