"""Export a finished run to GGUF in each type and print the table of docs/exporting-and-serving.md:
type -> file size, llama.cpp loads, greedy agreement with ftframe, perplexity delta, export and verify time.

    .venv/bin/python scripts/bench_gguf.py RUN_DIR [--types f32,f16,q8_0,q4_k_m,q4_0] [--out DIR]

Each type is exported by the ``gguf`` exporter exactly as ``ftframe export RUN_DIR exporters=[gguf]
exporters.gguf.type=TYPE`` would (same verification, default bounds), into ``--out`` (default: a temporary
folder) so the run dir's manifest is left alone. A type whose verification fails is reported with the reason.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ftframe.api import ExportContext
from ftframe.engine.export import saved_export_context
from ftframe.engine.saved_run import load_saved_run
from ftframe.errors import FtframeError
from ftframe.plugins import Registry, get_plugin_manager


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--types", default="f32,f16,q8_0,q4_k_m,q4_0")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write every type's details here")
    args = ap.parse_args()
    registry = Registry(get_plugin_manager())
    started = time.perf_counter()
    base = saved_export_context(load_saved_run(args.run_dir))
    print(f"loaded {args.run_dir} in {time.perf_counter() - started:.1f} s")
    out_root = args.out or Path(tempfile.mkdtemp(prefix="bench_gguf."))
    rows, everything = [], {}
    for kind in args.types.split(","):
        folder = out_root / kind
        folder.mkdir(parents=True, exist_ok=True)
        ctx = ExportContext(**{**base.__dict__, "run_dir": folder})
        t0 = time.perf_counter()
        try:
            res = registry.create("exporter", "gguf", {"type": kind}).export(ctx)
        except FtframeError as exc:
            rows.append(f"| {kind} | — | fails | — | — | — | {exc} |")
            everything[kind] = {"error": str(exc)}
            continue
        d, v = res.details, res.details["verification"]
        everything[kind] = d
        ppl = v.get("ppl_increase")
        rows.append(f"| {kind} | {d['bytes'] / 2**20:.1f} MiB | yes | {v['greedy_tokens_matched']}/{v['greedy_tokens']} "
                    f"tokens, {v['greedy_answers_identical']}/{v['prompts']} answers identical | "
                    + ("—" if ppl is None else f"{100 * ppl:+.3f}% (bound {100 * v['max_ppl_increase']:g}%)")
                    + f" | {d['export_seconds']:.1f} s + {d['verify_seconds']:.1f} s verify | "
                    f"max rel logit diff {v['max_rel_logit_diff']:.2g}; ppl {v.get('ppl_ftframe') or 0:.4g} -> "
                    f"{v.get('ppl_gguf') or 0:.4g}; total {time.perf_counter() - t0:.1f} s |")
        print(rows[-1], flush=True)
    print("\n| type | file size | llama.cpp loads | greedy agreement with ftframe | perplexity delta | "
          "export time | notes |\n|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
