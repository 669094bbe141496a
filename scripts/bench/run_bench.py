"""``make bench``: ftframe against the peer (TRL SFTTrainer + PEFT) on BANKING77, same machine, same data.

One invocation: build the data with the peer's own script (``../shared/bench/make_banking_chat.py``),
measure this machine's fp32 and bf16 matmul peak, then run the peer and ftframe alternately, ``--reps``
times each, every run in its own process (so peak RSS is per run). Reports medians and ratios of trained
tokens/s (both count every non-padding token of every training sequence), training wall time and peak
RSS; test accuracy / macro-F1 of both after the same training (peer: one-by-one greedy generation;
ftframe: the same, plus batched generation and label scoring, with their agreement); ftframe's model
FLOP utilisation; and, with ``--levers``, what each ftframe speed lever buys. Writes a JSON result and
the markdown tables into ``docs/benchmarks.md`` (between the ``bench:SECTION`` markers, ``--section``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("FTFRAME_SHARED", ROOT.parent / "shared"))
PEER = SHARED / "bench" / "peer_trl.py"
MAKE_DATA = SHARED / "bench" / "make_banking_chat.py"
BANKING = SHARED / "datasets" / "banking77"
DOC = ROOT / "docs" / "benchmarks.md"
LEVERS = {  # name -> ftframe_side.py flags; each row turns one lever off against the default
    "default (bf16 base, bf16 adapter maths, lean adapter forward, eager attention, fast head, length grouping, packed batches)": [],
    "padded batches (no packing, no shared prefix)": ["--no-packing"],
    "adapter maths in fp32 (peft's casts)": ["--adapter-compute", "fp32"],
    "peft's adapter forward (no lean forward)": ["--no-lean-adapter"],
    "sdpa attention while training": ["--attention", "sdpa"],
    "LM head over every position": ["--no-fast-head"],
    "random batches (no length grouping)": ["--no-group-by-length"],
    "fp32 instead of a bf16 base": ["--precision", "fp32"],
    "bf16-mixed (autocast on an fp32 base)": ["--precision", "bf16-mixed"],
    "all levers off (fp32, peft's forward, sdpa, full head, random padded batches)": [
        "--precision", "fp32", "--no-lean-adapter", "--attention", "sdpa", "--no-fast-head", "--no-group-by-length",
        "--no-packing"],
}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=2, help="training examples per intent (77 intents)")
    p.add_argument("--test-k", type=int, default=2, help="test examples per intent")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--reps", type=int, default=3, help="alternating repetitions of each system")
    p.add_argument("--no-eval", action="store_true",
                   help="training throughput only: no test evaluation (quality is then not reported)")
    p.add_argument("--levers", action="store_true",
                   help="also run the per-lever table: each lever off against the default, in alternating pairs")
    p.add_argument("--lever-pairs", type=int, default=3,
                   help="alternating (default, lever off) pairs per lever; the table reports the median pair ratio")
    p.add_argument("--triage", action="store_true",
                   help="also time the default `make run` job (python -m ftframe +task=triage) end to end")
    p.add_argument("--triage-repo", type=Path, default=ROOT,
                   help="checkout whose triage job to time (e.g. a git worktree of an older commit, run with "
                        "this venv), to compare before/after a change in one sitting")
    p.add_argument("--section", default="train",
                   help="name of the result: the JSON is results/SECTION.json and --write-docs replaces the "
                        "block between the bench:SECTION markers (e.g. 'quality' for a longer run with more "
                        "data and epochs, kept beside the quick throughput table)")
    p.add_argument("--out", help="the JSON result (default: scripts/bench/results/SECTION.json)")
    p.add_argument("--write-docs", action="store_true", help=f"update the tables in {DOC.relative_to(ROOT)}")
    return p.parse_args()


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 7) -> float:
    """Median GFLOP/s of an n x n matmul in ``dtype`` on this machine (2 n^3 FLOPs per product)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def body_params(model_dir: Path) -> int:
    """Parameters of the decoder body (no embeddings, no LM head): what every token passes through."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    skip = {id(p) for p in model.get_input_embeddings().parameters()} | \
        {id(p) for p in model.get_output_embeddings().parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def run_json(cmd: list[str]) -> dict:
    """Run one benchmark process; its last stdout line is its JSON result."""
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark process failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def triage_job(repo: Path) -> dict:
    """The default ``make run`` job of ``repo``, whole: wall time, training facts and test macro-F1."""
    with tempfile.TemporaryDirectory(prefix="ftframe-triage-") as tmp:
        env = dict(os.environ, PYTHONPATH=f"{repo}{os.pathsep}{repo / 'plugins'}")
        cmd = [sys.executable, "-m", "ftframe", "+task=triage", "trainer.enable_progress_bar=false",
               f"hydra.run.dir={tmp}"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, check=False, cwd=repo, env=env, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        metrics = Path(tmp) / "metrics.json"  # written also when the gate fails
        if not metrics.is_file():
            raise SystemExit(f"the triage job failed (exit {proc.returncode}): {' '.join(cmd)}")
        m = json.loads(metrics.read_text())
    train = m["train"]
    return {"repo": str(repo), "job_wall_s": round(wall, 1), "train_seconds": train["train_seconds"],
            "tokens_per_s": train["tokens_per_second"], "precision": train.get("precision"),
            "macro_f1": round(m["test"]["values"]["macro_f1"], 4), "load_avg": load_avg()}


def load_avg() -> list[float]:
    """1/5/15-minute load averages: how busy the shared machine was around a measurement."""
    return [round(x, 2) for x in os.getloadavg()]


def model_dir() -> Path:
    from ftframe.plugins import Registry, get_plugin_manager

    source = Registry(get_plugin_manager()).create("model_source", "smollm2", {})
    return Path(source.cached_folder())  # type: ignore[attr-defined]  # converts the GGUF once


def machine() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from ftframe.engine.hparams import hardware_bf16

    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "native_bf16": hardware_bf16(), "torch": torch.__version__, "python": platform.python_version()}


def med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> None:
    a = parse()
    for path in (PEER, MAKE_DATA, BANKING / "train.csv"):
        if not path.exists():
            raise SystemExit(f"{path} is missing: the benchmark needs ../shared beside the repository "
                             f"(or FTFRAME_SHARED pointing at it).")
    mdir = model_dir()
    tmp = Path(tempfile.mkdtemp(prefix="ftframe-bench-"))
    train, test = tmp / "train.jsonl", tmp / "test.jsonl"
    subprocess.run([sys.executable, str(MAKE_DATA), str(BANKING / "train.csv"), str(train), str(a.k), "0"], check=True)
    subprocess.run([sys.executable, str(MAKE_DATA), str(BANKING / "test.csv"), str(test), str(a.test_k), "1"],
                   check=True)
    peak = {"fp32_gflops": round(matmul_peak(torch.float32), 1), "bf16_gflops": round(matmul_peak(torch.bfloat16), 1)}
    print(f"matmul peak: {peak}", file=sys.stderr)
    common = ["--model", str(mdir), "--train", str(train), "--epochs", str(a.epochs), "--bs", "8",
              "--lr", "2e-4", "--rank", "16"]
    peer_cmd = [sys.executable, str(PEER), *common, "--out", str(tmp / "peer_out")]  # fp32: its fastest here
    ours_cmd = [sys.executable, str(ROOT / "scripts" / "bench" / "ftframe_side.py"), *common]
    peer, ours = [], []
    for rep in range(a.reps):
        evaluate = ["--test", str(test)] if rep == 0 and not a.no_eval else []  # quality is measured once; speed every rep
        order = [("peer", peer_cmd), ("ftframe", ours_cmd)]
        for name, cmd in order if rep % 2 == 0 else order[::-1]:
            result = {**run_json(cmd + evaluate), "load_avg": load_avg()}
            (peer if name == "peer" else ours).append(result)
            print(f"rep {rep} {name}: {result.get('tokens_per_s')} tokens/s, {result.get('train_wall_s')} s, "
                  f"{result.get('peak_rss_mb')} MB", file=sys.stderr)
    levers = {}
    if a.levers:
        # Each lever is compared with a default run next to it, in pairs whose order alternates: on this shared
        # machine one run's speed moves by +-15%, so single runs per row compared with one default run misled.
        for label, flags in list(LEVERS.items())[1:]:
            pairs = []
            for rep in range(a.lever_pairs):
                order = [("default", []), ("lever", flags)]
                pair = {}
                for which, extra in order if rep % 2 == 0 else order[::-1]:
                    pair[which] = {**run_json(ours_cmd + extra + ["--eval-modes", ""]), "load_avg": load_avg()}
                pairs.append(pair)
                print(f"lever {label}, pair {rep}: {pair['lever']['tokens_per_s']} against "
                      f"{pair['default']['tokens_per_s']} tokens/s", file=sys.stderr)
            levers[label] = {
                "pairs": pairs,
                "tokens_per_s": statistics.median(p["lever"]["tokens_per_s"] for p in pairs),
                "default_tokens_per_s": statistics.median(p["default"]["tokens_per_s"] for p in pairs),
                "ratio": round(statistics.median(p["lever"]["tokens_per_s"] / p["default"]["tokens_per_s"]
                                                 for p in pairs), 2),
            }
    triage = triage_job(a.triage_repo.resolve()) if a.triage else None
    n_body = body_params(mdir)
    tps = med(ours, "tokens_per_s")
    flops = 4 * n_body * tps  # forward + input-gradient backward; frozen weights need no weight gradient
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "machine": machine(), "matmul_peak": peak,
        "setup": {"data": f"BANKING77, {a.k}/intent train ({77 * a.k}), {a.test_k}/intent test ({77 * a.test_k})",
                  "model": "SmolLM2-135M-Instruct (embedded)", "lora": "r16 alpha32 all-linear, dropout 0",
                  "lr": 2e-4, "batch_size": 8, "scheduler": "cosine", "epochs": a.epochs, "reps": a.reps},
        "peer": peer, "ftframe": ours, "levers": levers, "triage": triage,
        "median": {"peer_tokens_per_s": med(peer, "tokens_per_s"), "ftframe_tokens_per_s": tps,
                   "throughput_ratio": round(tps / med(peer, "tokens_per_s"), 2),
                   "peer_train_wall_s": med(peer, "train_wall_s"), "ftframe_train_wall_s": med(ours, "train_wall_s"),
                   "peer_peak_rss_mb": med(peer, "peak_rss_mb"), "ftframe_peak_rss_mb": med(ours, "peak_rss_mb")},
        "mfu": {"body_params": n_body, "model_gflops_per_s": round(flops / 1e9, 1),
                "vs_bf16_peak": round(flops / 1e9 / peak["bf16_gflops"], 4),
                "vs_fp32_peak": round(flops / 1e9 / peak["fp32_gflops"], 4)},
    }
    out = Path(a.out or ROOT / "scripts" / "bench" / "results" / f"{a.section}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    print(table)
    if a.write_docs:
        start, end = f"<!-- bench:{a.section}:start -->", f"<!-- bench:{a.section}:end -->"
        text = DOC.read_text(encoding="utf-8")
        block = f"{start}\n{table}\n{end}"
        text = (text[: text.index(start)] + block + text[text.index(end) + len(end):]) if start in text \
            else text.rstrip() + "\n\n" + block + "\n"
        DOC.write_text(text, encoding="utf-8")
        print(f"updated {DOC}", file=sys.stderr)


def markdown(r: dict) -> str:
    m, p0, o0 = r["median"], r["peer"][0], r["ftframe"][0]
    lines = [
        (f"Measured {r['when']} UTC on {r['machine']['cpu']} ({r['machine']['cores']} cores, torch "
        f"{r['machine']['torch']}); {r['setup']['data']}; {r['setup']['lora']}, lr {r['setup']['lr']}, batch "
        f"{r['setup']['batch_size']}, cosine, {r['setup']['epochs']} epoch(s); medians of {r['setup']['reps']} "
        f"alternating runs each. Reproduce: `make bench`."),
        "",
        "| | peer (TRL SFTTrainer + PEFT, fp32) | ftframe (defaults) | ratio |",
        "|---|---|---|---|",
        f"| trained tokens/s | {m['peer_tokens_per_s']} | {m['ftframe_tokens_per_s']} | **{m['throughput_ratio']}x** |",
        (f"| training wall time (s) | {m['peer_train_wall_s']} | {m['ftframe_train_wall_s']} | "
        f"{round(m['peer_train_wall_s'] / m['ftframe_train_wall_s'], 2)}x |"),
        (f"| peak RSS (MB) | {m['peer_peak_rss_mb']} | {m['ftframe_peak_rss_mb']} | "
        f"{round(m['ftframe_peak_rss_mb'] / m['peer_peak_rss_mb'], 2)} |"),
    ]
    if "accuracy" in p0 and "eval_one_by_one" in o0:
        g = o0["eval_one_by_one"]
        lines += [(f"| test accuracy / macro-F1 (greedy generation) | {p0['accuracy']} / {p0['macro_f1']} | "
                  f"{g['accuracy']} / {g['macro_f1']} | |"),
                  f"| test evaluation, one by one (s) | {p0['eval_wall_s']} | {g['seconds']} | |"]
        lines += ["", "ftframe evaluation of the same tuned model:", "",
                  ("| mode | seconds | speed-up vs one-by-one | vs the peer's one-by-one | accuracy | macro-F1 | "
                  "same answer as one-by-one |"),
                  "|---|---|---|---|---|---|---|"]
        for mode in ("one_by_one", "batched", "score"):
            e = o0.get(f"eval_{mode}")
            if e:
                lines.append(f"| {mode.replace('_', ' ')} | {e['seconds']} | {round(g['seconds'] / e['seconds'], 1)}x | "
                             f"{round(p0['eval_wall_s'] / e['seconds'], 1)}x | "
                             f"{e['accuracy']} | {e['macro_f1']} | {e.get('agrees_with_one_by_one', 1.0)} |")
    mfu, pk = r["mfu"], r["matmul_peak"]
    lines += ["", (f"Model FLOP utilisation: {mfu['model_gflops_per_s']} GFLOP/s of model work "
              f"(4 x {mfu['body_params']:,} decoder parameters x tokens/s) = **{mfu['vs_bf16_peak']:.1%}** of the "
              f"measured bf16 matmul peak ({pk['bf16_gflops']} GFLOP/s) and {mfu['vs_fp32_peak']:.1%} of the fp32 "
              f"peak ({pk['fp32_gflops']} GFLOP/s).")]
    loads = [x["load_avg"][0] for x in r["peer"] + r["ftframe"] if "load_avg" in x]
    if loads:
        lines += ["", (f"1-minute load average during the runs: {min(loads)} to {max(loads)} on "
                  f"{r['machine']['cores']} cores (the machine is shared; ratios come from alternating runs).")]
    if r.get("triage"):
        t = r["triage"]
        lines += ["", (f"`make run` (triage, default settings): job {t['job_wall_s']} s, training "
                  f"{t['train_seconds']} s at {t['tokens_per_s']} tokens/s ({t['precision']}), test macro-F1 "
                  f"**{t['macro_f1']}** (load average {t['load_avg'][0]}).")]
    if r["levers"]:
        default = next(iter(LEVERS))
        pairs = len(next(iter(r["levers"].values()))["pairs"])
        lines += ["", (f"Each lever off against the {default}: {pairs} alternating pairs of training runs per row, "
                       "tokens/s as medians, the ratio the median of the pairs' ratios."), "",
                  "| ftframe with one lever off | tokens/s | default, same pairs | lever off / default | pair ratios |",
                  "|---|---|---|---|---|"]
        lines += [f"| {k} | {v['tokens_per_s']} | {v['default_tokens_per_s']} | **{v['ratio']}x** | "
                  f"{', '.join(str(round(p['lever']['tokens_per_s'] / p['default']['tokens_per_s'], 2)) for p in v['pairs'])} |"
                  for k, v in r["levers"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
