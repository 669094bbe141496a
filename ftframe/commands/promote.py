"""``ftframe promote RUN --name NAME [--compare]``: register a run in MLflow's Model Registry and move an alias.

RUN (a finished run dir that passed its gate) becomes a new version of the registered model NAME, with its
exported weights, manifest, metrics, config, predictions and data splits; then ``--alias`` (default
``champion``) points at it. With ``--compare`` the run is first compared with the version the alias points
at now (as ``ftframe compare``, with the same options) and promoted only if it may replace it.
A refused promotion changes nothing and exits 1.

``--rollback`` moves the alias back to the version it pointed at before; ``--to-version N`` moves it to
version N (with ``--compare``: only if version N may replace the alias's current version); ``--list`` shows the versions and their aliases. Serve what an alias names with
``ftframe serve models:/NAME@champion``. See docs/lifecycle.md.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any


def _list(args: argparse.Namespace, con: Any) -> int:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from ftframe.lifecycle.registry import versions

    rows = versions(args.name, registry=args.registry)
    t = Table(title=f"registered model {args.name}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("version", "aliases", "metric", "created (UTC)", "run dir; compared with"):
        t.add_column(col, justify="right" if col == "version" else "left", no_wrap=col != "run dir; compared with",
                     overflow="fold")
    for r in rows:
        where = str(r["run_dir"]) + (f"\n{r['compared_with']}" if r["compared_with"] else "")
        t.add_row(str(r["version"]), ", ".join(r["aliases"]), f"{r['primary']} {r['value'] or '—'}",
                  r["created"][:16].replace("T", " "), escape(where))
    con.print(t)
    return 0


def _comparer(args: argparse.Namespace, con: Any) -> Any:
    """``compare(champion_dir, challenger_dir=RUN)``: ``ftframe compare`` with this command's options."""
    from ftframe.commands.compare import build_comparison
    from ftframe.lifecycle.compare_report import print_comparison, write_comparison

    out = Path(args.out or f"outputs/compare/{datetime.now():%Y-%m-%d_%H-%M-%S}")

    def compare(champion_dir: Path, challenger: str | None = None) -> Any:
        comp = build_comparison(str(champion_dir), challenger or str(args.run_dir), args, out, con)
        write_comparison(comp, out)
        print_comparison(comp, con)
        return comp

    return compare


def _compare_versions(args: argparse.Namespace, compare: Any) -> None:
    """``--to-version N --compare``: version N against the alias's current version; refused unless it may
    replace it (the alias is then left where it is)."""
    from ftframe.lifecycle import PromotionRefused
    from ftframe.lifecycle.registry import open_client, registered_model, resolve_model_uri

    client = open_client(args.registry)
    model = registered_model(client, args.name)
    if model is None or args.alias not in (model.aliases or {}):
        return  # nothing to compare with (move_alias reports an unknown model)
    current = resolve_model_uri(f"models:/{args.name}@{args.alias}", client=client)
    target = resolve_model_uri(f"models:/{args.name}/{args.to_version}", client=client)
    comp = compare(current.run_dir, str(target.run_dir))
    if not comp.accepted:
        raise PromotionRefused(f"Not moving {args.name}@{args.alias} to version {args.to_version}: against version "
                               f"{current.version} {'; '.join(comp.reasons)}. {args.alias} still points at version "
                               f"{current.version}.")


def run(args: argparse.Namespace) -> int:
    from ftframe import console as ui
    from ftframe.lifecycle import LifecycleError
    from ftframe.lifecycle.registry import move_alias, promote

    con = ui.get_console()
    moves = sum(bool(x) for x in (args.rollback, args.to_version is not None, args.list))
    if moves > 1 or (moves and args.run_dir):
        raise LifecycleError("Give one of: RUN (promote it), --rollback, --to-version N, --list.")
    if args.list:
        return _list(args, con)
    compare = _comparer(args, con) if args.compare else None
    if args.rollback and args.compare:
        raise LifecycleError("--rollback moves the alias back without a comparison; drop --compare.")
    if args.rollback or args.to_version is not None:
        if compare is not None:
            _compare_versions(args, compare)
        before, after = move_alias(args.name, args.alias, version=args.to_version, registry=args.registry)
        con.print(f"{args.name}@{args.alias}: version {before if before is not None else '(none)'} → version {after}")
        return 0
    if not args.run_dir:
        raise LifecycleError("ftframe promote needs a run dir: ftframe promote RUN --name NAME.")
    result = promote(args.run_dir, args.name, alias=args.alias, registry=args.registry, compare=compare)
    if args.compare and result.previous is None:
        con.print(f"no {args.alias} yet: nothing to compare with")
    con.print(f"[bold green]registered {args.run_dir} as {result.name} version {result.version}[/]; "
              f"{result.alias}: {('version ' + str(result.previous)) if result.previous else '(none)'} → version "
              f"{result.version} (registry {result.registry})")
    con.print(f"serve it: ftframe serve models:/{result.name}@{result.alias}"
              + (f"   roll back: ftframe promote --name {result.name} --rollback" if result.previous else ""))
    return 0


def add_parser(sub: Any) -> None:
    from ftframe.commands.compare import add_gate_arguments

    p = sub.add_parser("promote", help="register a run in MLflow's Model Registry and move its alias (champion)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="?", metavar="RUN", help="the run dir to register")
    p.add_argument("--name", required=True, help="the registered model's name, e.g. triage")
    p.add_argument("--alias", default="champion", help="the alias to move (default: champion)")
    p.add_argument("--compare", action="store_true", help="compare RUN with the alias's current version first; "
                   "promote only if it may replace it")
    p.add_argument("--rollback", action="store_true", help="move the alias back to its previous version")
    p.add_argument("--to-version", type=int, metavar="N", help="move the alias to version N")
    p.add_argument("--list", action="store_true", help="list the versions and aliases")
    p.add_argument("--out", help="with --compare: the comparison's output folder (default: outputs/compare/<time>)")
    add_gate_arguments(p)
    p.set_defaults(func=run)
