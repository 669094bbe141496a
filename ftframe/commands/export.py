"""``ftframe export RUN_DIR exporters=[merged,gguf] [exporters.gguf.type=q8_0 ...]``: export a finished run later.

The tuned model is loaded from the run dir (see :mod:`ftframe.engine.saved_run`), each exporter runs and
verifies its artefact exactly as at the end of a job, and the run's ``manifest.json`` records the result.
"""

from __future__ import annotations

import argparse
from typing import Any


def run(args: argparse.Namespace) -> int:
    from ftframe.engine.export import export_saved_run

    export_saved_run(args.run_dir, args.overrides)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="run exporters (merged, gguf, ...) on a finished run dir, verified")
    p.add_argument("run_dir", help="the folder a job wrote (holds config.yaml and manifest.json)")
    p.add_argument("overrides", nargs="+", metavar="exporters=[...]",
                   help="exporters=[merged,gguf] plus options such as exporters.gguf.type=q8_0")
    p.set_defaults(func=run)
