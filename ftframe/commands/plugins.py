"""``ftframe plugins [--json|--markdown]``: every plugin with kind, names, distribution, version, status.

It always answers (exit 0), broken plugins included: they are listed with the reason, so this is the
command to diagnose them with, while jobs refuse to start until they are fixed or disabled.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ftframe.plugins import GROUP_OF_KIND, Registry, broken_plugins, get_plugin_manager


def plugin_rows(registry: Registry) -> list[dict[str, object]]:
    rows = []
    for info in sorted(registry.pm.ftframe_infos.values(), key=lambda i: i.name):  # type: ignore[attr-defined]
        rows.append({"name": info.name, "distribution": info.distribution, "version": info.version,
                     "module": info.module, "blocked": info.blocked, "status": info.status,
                     "problem": info.problem,
                     "provides": {GROUP_OF_KIND[k]: sorted(v) for k, v in info.provides.items() if v}})
    return rows


def _report_broken(registry: Registry) -> None:
    broken = broken_plugins(registry.pm)
    if broken:
        names = ",".join(i.name for i in broken)
        print(f"{len(broken)} plugin(s) broken ({names}): jobs and `ftframe validate` refuse to start until each "
              f"is fixed, uninstalled or disabled (FTFRAME_DISABLE_PLUGINS={names}).", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    registry = Registry(get_plugin_manager(), allow_broken=True)  # fills in what each plugin provides
    if args.markdown:
        from ftframe.plugin_docs import markdown

        print(markdown(registry, distribution=args.distribution), end="")
        _report_broken(registry)
        return 0
    rows = plugin_rows(registry)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="ftframe plugins", title_justify="left")
    for col in ("plugin", "provides", "distribution", "version", "status"):
        table.add_column(col)
    style = {"loaded": "loaded", "blocked": "[red]blocked[/]", "no hooks": "[yellow]no hooks[/]",
             "broken": "[red]broken[/] (below)"}
    for r in rows:
        provides = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in r["provides"].items())  # type: ignore[union-attr]
        table.add_row(str(r["name"]), provides or "—", str(r["distribution"]), str(r["version"]),
                      style[str(r["status"])])
    console = Console()
    console.print(table)
    for info in broken_plugins(registry.pm):
        console.print(f"[red]broken[/]: {escape(info.broken_message())}", soft_wrap=True)
    _report_broken(registry)
    return 0


def add_parser(sub: Any) -> None:
    pl = sub.add_parser("plugins", help="list installed plugins (broken ones with the reason)")
    pl.add_argument("--json", action="store_true", help="machine-readable output")
    pl.add_argument("--markdown", action="store_true", help="reference of every plugin's options")
    pl.add_argument("--distribution", help="with --markdown: only plugins of this distribution")
    pl.set_defaults(func=run)
