"""The ``ftframe`` console script: utility commands beside the Hydra job (``python -m ftframe``).

``ftframe plugins [--json]`` lists every plugin: name, kind(s) and what it provides, distribution and
version, and whether it is blocked by ``FTFRAME_DISABLE_PLUGINS``. ``ftframe validate [overrides]``
composes a config and reports every problem at once. Later commands (data check, eval, export, serve,
report, rerun) hang off the same parser.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ftframe.errors import FtframeError
from ftframe.plugins import GROUP_OF_KIND, Registry, get_plugin_manager


def plugin_rows() -> list[dict[str, object]]:
    pm = get_plugin_manager()
    Registry(pm)  # fills in what each plugin provides
    rows = []
    for info in sorted(pm.ftframe_infos.values(), key=lambda i: i.name):  # type: ignore[attr-defined]
        rows.append({"name": info.name, "distribution": info.distribution, "version": info.version,
                     "module": info.module, "blocked": info.blocked,
                     "provides": {GROUP_OF_KIND[k]: sorted(v) for k, v in info.provides.items() if v}})
    return rows


def cmd_plugins(args: argparse.Namespace) -> int:
    if args.markdown:
        from ftframe.plugin_docs import markdown

        print(markdown(Registry(get_plugin_manager()), distribution=args.distribution), end="")
        return 0
    rows = plugin_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ftframe plugins", title_justify="left")
    for col in ("plugin", "provides", "distribution", "version", "status"):
        table.add_column(col)
    for r in rows:
        provides = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in r["provides"].items())  # type: ignore[union-attr]
        table.add_row(str(r["name"]), provides or "—", str(r["distribution"]), str(r["version"]),
                      "[red]blocked[/]" if r["blocked"] else "loaded")
    Console().print(table)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Compose the config and run every check (schemas, cross-field rules, files, plugins); load nothing."""
    from omegaconf import OmegaConf

    from ftframe.config.compose import compose
    from ftframe.config.validate import problems

    registry = Registry(get_plugin_manager())
    cfg = compose(args.overrides, registry=registry)
    found = problems(cfg, registry)
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ftframe", description="ftframe utility commands; run jobs with "
                                "`python -m ftframe +task=NAME`.")
    sub = p.add_subparsers(dest="command", required=True)
    pl = sub.add_parser("plugins", help="list installed plugins")
    pl.add_argument("--json", action="store_true", help="machine-readable output")
    pl.add_argument("--markdown", action="store_true", help="reference of every plugin's options")
    pl.add_argument("--distribution", help="with --markdown: only plugins of this distribution")
    pl.set_defaults(func=cmd_plugins)
    va = sub.add_parser("validate", help="compose a config and check it, without loading weights or data")
    va.add_argument("overrides", nargs="*", help="as for python -m ftframe, e.g. +task=triage backend.lr=1e-3")
    va.add_argument("--print", action="store_true", help="also print the resolved config")
    va.set_defaults(func=cmd_validate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except FtframeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
