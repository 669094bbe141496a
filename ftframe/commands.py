"""The ``ftframe`` console script: utility commands beside the Hydra job (``python -m ftframe``).

``ftframe plugins [--json]`` lists every plugin: name, kind(s) and what it provides, distribution and
version, and whether it is blocked by ``FTFRAME_DISABLE_PLUGINS``. Later commands (data check,
validate, eval, export, serve, report, rerun) hang off the same parser.
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ftframe", description="ftframe utility commands; run jobs with "
                                "`python -m ftframe +task=NAME`.")
    sub = p.add_subparsers(dest="command", required=True)
    pl = sub.add_parser("plugins", help="list installed plugins")
    pl.add_argument("--json", action="store_true", help="machine-readable output")
    pl.set_defaults(func=cmd_plugins)
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
