"""``ftframe plugins [--json|--markdown]``: every plugin with kind, names, distribution, version, status."""

from __future__ import annotations

import argparse
import json
from typing import Any

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


def run(args: argparse.Namespace) -> int:
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



def add_parser(sub: Any) -> None:
    pl = sub.add_parser("plugins", help="list installed plugins")
    pl.add_argument("--json", action="store_true", help="machine-readable output")
    pl.add_argument("--markdown", action="store_true", help="reference of every plugin's options")
    pl.add_argument("--distribution", help="with --markdown: only plugins of this distribution")
    pl.set_defaults(func=run)
