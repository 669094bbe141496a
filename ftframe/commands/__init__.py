"""The ``ftframe`` console script: utility commands beside the Hydra job (``python -m ftframe``).

Each subcommand is a module in this package with ``add_parser(subparsers)``, which registers the
command and sets ``func`` (``args -> exit code``); ``COMMANDS`` lists them in help order.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ftframe.errors import FtframeError

COMMANDS = ("plugins", "validate", "report", "rerun", "export", "predict", "serve", "data", "eval", "compare",
            "promote", "monitor")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ftframe", description="ftframe utility commands; run jobs with "
                                "`python -m ftframe +task=NAME`.")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"ftframe.commands.{name}").add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from ftframe.plugins import show_warnings_plainly

    show_warnings_plainly()
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except FtframeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
