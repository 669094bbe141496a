#!/usr/bin/env python3
"""Peak memory of LoRA and full fine-tuning of a ~1B-parameter Llama, measured against ftframe's estimate.

Builds a randomly initialised Llama with TinyLlama-1.1B's shape (hidden 2048, intermediate 5632, 32 heads,
4 KV heads, vocabulary 32,000, untied head; ``--layers`` decoder layers, 20 by default: 1.01B parameters)
from a config, no download, and saves it in bf16 as a Hugging Face folder with ftframe's tiny test
tokenizer (its ~400 ids are the first rows of the 32,000-row embedding). Then for each backend it runs
``python -m ftframe`` on a small chat file (``--rows`` examples of about ``--max-length`` tokens, 60% of
them trained: 3 steps of batch 2 by default) under ``/usr/bin/time -v`` and reads:

* measured: the process's peak resident set size (``Maximum resident set size``), the whole run, and the
  peak of each stage the run prints (RSS sampled every 50 ms from ``/proc``, anonymous and file-backed);
* estimate: ``metrics.json`` → ``train.memory`` (the memory preflight of ``ftframe.engine.memory``):
  ``expected_peak`` = the process's RSS when training starts (framework, data, copied weights) +
  ``needed`` (memory-mapped weights, gradients, optimizer state and AdamW's step temporaries, activations,
  logits), and its terms;
* step time: ``train.train_seconds / train.steps`` (the first step included).

The runs go one at a time; run them on an otherwise quiet machine (full fine-tuning of 1B parameters in
fp32 needs ~18 GiB, in bf16-true ~10 GiB; the results are in docs/training.md, "Measured at 1B
parameters")::

    .venv/bin/python scripts/bench_memory.py --markdown /tmp/bench_memory.md      # lora, full:bf16-true
    .venv/bin/python scripts/bench_memory.py --runs full:fp32 --layers 16          # a 0.84B model
    MALLOC_MMAP_THRESHOLD_=1048576 .venv/bin/python scripts/bench_memory.py --runs full:bf16-true  # glibc keeps no freed heap

``--runs`` takes ``backend[:precision]`` items (precision default ``auto``: bf16-true for lora, bf16-mixed
for full where the CPU has bf16 maths).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

GiB = 1024**3
SHAPE = {"hidden_size": 2048, "intermediate_size": 5632, "num_attention_heads": 32, "num_key_value_heads": 4,
         "vocab_size": 32000}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/ftframe-bench-memory", help="model folder, data and run dirs go here")
    p.add_argument("--layers", type=int, default=20, help="decoder layers (20: 1.01B parameters, 22: 1.10B)")
    p.add_argument("--runs", default="lora,full:bf16-true", help="comma-separated backend[:precision] items")
    p.add_argument("--rows", type=int, default=10, help="examples in the data file (60%% train, 40%% test)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--markdown", help="also write the table to this file")
    p.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def build_model(folder: Path, layers: int) -> int:
    """Write the random ~1B Llama (bf16) and the tiny tokenizer to ``folder``; returns the parameter count."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ftframe.testing import tiny_tokenizer

    tiny_tokenizer(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    config = LlamaConfig(**SHAPE, num_hidden_layers=layers, max_position_embeddings=2048, tie_word_embeddings=False,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def ensure_model(work: Path, layers: int) -> tuple[Path, int]:
    """The model folder for ``layers`` (built in a child process, so this one holds none of its memory)."""
    folder = work / f"llama-{layers}l"
    count_file = folder / "parameters.txt"
    if not count_file.is_file():
        print(f"building the random {layers}-layer Llama in {folder} ...", flush=True)
        subprocess.run([sys.executable, __file__, "--build-only", "--work", str(work), "--layers", str(layers)],
                       check=True)
    return folder, int(count_file.read_text())


def write_data(path: Path, folder: Path, rows: int, max_length: int) -> None:
    """``rows`` two-label chat examples, each a little under ``max_length`` tokens (none is truncated)."""
    from transformers import AutoTokenizer

    from ftframe.engine import encode
    from ftframe.testing import _CORPUS, write_chat_jsonl

    tok = AutoTokenizer.from_pretrained(folder)
    out = []
    for i in range(rows):
        label = ("billing", "technical")[i % 2]
        words: list[str] = [f"ticket {i}:"]
        for j in range(10_000):
            candidate = [*words, _CORPUS[(i + j) % len(_CORPUS)]]
            chat = [{"role": "user", "content": " ".join(candidate)}, {"role": "assistant", "content": label}]
            if len(encode(tok, chat).labels) > max_length - 4:
                break
            words = candidate
        out.append((" ".join(words), label))
    write_chat_jsonl(path, out)


def command(folder: Path, data: Path, run_dir: Path, backend: str, precision: str, args: argparse.Namespace) -> list[str]:
    """The ftframe run: a few training steps, no baseline, no validation, a short evaluation, no weights exported."""
    return [sys.executable, "-m", "ftframe", "model=hf_local", f"model.path={folder}", f"data.path={data}",
            "task.name=bench_memory", f"backend={backend}", f"backend.precision={precision}", "backend.epochs=1",
            f"backend.batch_size={args.batch_size}", f"backend.max_length={args.max_length}",
            "split.train=0.6", "split.val=0", "split.test=0.4", "eval.baseline=false", "eval.limit=2",
            "eval.max_new_tokens=2", "eval.precision=model", "exporters=[model_card]",
            "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}"]


def max_rss(time_output: str) -> int:
    """Bytes from ``/usr/bin/time -v``'s ``Maximum resident set size (kbytes)``."""
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_output)
    if not found:
        raise RuntimeError(f"no 'Maximum resident set size' in /usr/bin/time's output:\n{time_output[-2000:]}")
    return int(found.group(1)) * 1024


def _status_kb(pid: int) -> tuple[int, int, int] | None:
    """``(VmRSS, RssAnon, RssFile)`` in bytes of a live process (Linux ``/proc/PID/status``)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = dict(re.findall(r"^(VmRSS|RssAnon|RssFile):\s+(\d+) kB", text, re.MULTILINE))
    if len(values) < 3:
        return None
    return int(values["VmRSS"]) * 1024, int(values["RssAnon"]) * 1024, int(values["RssFile"]) * 1024


def run_sampled(cmd: list[str]) -> tuple[subprocess.CompletedProcess, list[tuple[float, str]], list[tuple[float, tuple[int, int, int]]]]:
    """Run ``/usr/bin/time -v cmd``; returns the result, stdout lines with their times, and RSS samples of
    the ftframe process (every 50 ms: total, anonymous, file-backed such as memory-mapped weights)."""
    import threading

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each line as it is printed: the stage marks' times
    proc = subprocess.Popen(["/usr/bin/time", "-v", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    lines: list[tuple[float, str]] = []
    err: list[str] = []
    samples: list[tuple[float, tuple[int, int, int]]] = []

    def read_out() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append((time.perf_counter(), line.rstrip("\n")))

    def read_err() -> None:
        err.append(proc.stderr.read())  # type: ignore[union-attr]

    readers = [threading.Thread(target=read_out), threading.Thread(target=read_err)]
    for t in readers:
        t.start()
    child = None
    while proc.poll() is None:
        if child is None:
            kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            ids = kids.read_text().split() if kids.is_file() else []
            child = int(ids[0]) if ids else None
        if child is not None and (rss := _status_kb(child)) is not None:
            samples.append((time.perf_counter(), rss))
        time.sleep(0.05)
    for t in readers:
        t.join()
    return subprocess.CompletedProcess(proc.args, proc.returncode, "\n".join(x for _, x in lines), err[0]), lines, samples


def stage_peaks(lines: list[tuple[float, str]], samples: list[tuple[float, tuple[int, int, int]]]) -> dict[str, Any]:
    """The RSS peak of each stage the run prints (``3/6 train (...)``: loading and training): the sample
    with the highest total, as ``(total, anonymous, file-backed)`` bytes."""
    marks = [(t, m.group(1)) for t, line in lines if (m := re.search(r"(\d/6 [a-z][\w ]*)", line))]
    marks.insert(0, (0.0, "start"))
    out: dict[str, Any] = {}
    for i, (t0, name) in enumerate(marks):
        t1 = marks[i + 1][0] if i + 1 < len(marks) else float("inf")
        inside = [rss for t, rss in samples if t0 <= t < t1]
        if inside:
            out[name.strip()] = max(inside)
    return out


def measure(folder: Path, data: Path, work: Path, item: str, args: argparse.Namespace) -> dict[str, Any]:
    backend, _, precision = item.partition(":")
    run_dir = work / "runs" / item.replace(":", "-")
    shutil.rmtree(run_dir, ignore_errors=True)  # a run dir with a checkpoint would resume, not train
    cmd = command(folder, data, run_dir, backend, precision or "auto", args)
    print("$ /usr/bin/time -v python " + " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    proc, lines, samples = run_sampled(cmd)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{item} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    train = json.loads((run_dir / "metrics.json").read_text())["train"]
    mem = train["memory"]
    peak = max_rss(proc.stderr)
    stages = stage_peaks(lines, samples)
    train_stage = next((v for k, v in stages.items() if k.startswith("3/6")), (0, 0, 0))
    for name, (total, anon, file) in stages.items():
        print(f"  {name}: peak RSS {total / GiB:.2f} GiB (anonymous {anon / GiB:.2f}, file-backed {file / GiB:.2f})")
    return {"run": item, "backend": backend, "precision": train["precision"], "parameters": train["total_params"],
            "trainable": train["trainable_params"], "steps": train["steps"], "memory": mem, "peak_rss": peak,
            "train_stage_rss": train_stage, "stages": stages, "ratio": peak / mem["expected_peak"],
            "train_ratio": train_stage[0] / mem["expected_peak"],
            "step_seconds": train["train_seconds"] / max(train["steps"], 1), "wall_seconds": wall}


def table(rows: list[dict[str, Any]]) -> str:
    gb = lambda n: f"{n / GiB:.2f}"
    lines = [("| backend | precision | parameters (trainable) | estimate: RSS at start + needed (weights, grads, "
              "AdamW, AdamW step, activations, logits) | estimated peak | measured peak RSS, whole run | measured peak RSS, "
              "load + train stage (anonymous + file) | train stage / estimate | step time |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["memory"]
        terms = ", ".join(gb(m[k]) for k in ("parameters", "gradients", "optimizer", "optimizer_step", "activations",
                                                "logits"))
        total, anon, file = r["train_stage_rss"]
        lines.append(f"| {r['backend']} | {r['precision']} | {r['parameters'] / 1e9:.2f}B ({r['trainable'] / 1e6:,.1f}M) "
                     f"| {gb(m['process_rss'])} + {gb(m['needed'])} ({terms}) | {gb(m['expected_peak'])} GiB "
                     f"| {gb(r['peak_rss'])} GiB | {gb(total)} GiB ({gb(anon)} + {gb(file)}) | {r['train_ratio']:.2f} "
                     f"| {r['step_seconds']:.1f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.build_only:
        folder = work / f"llama-{args.layers}l"
        count = build_model(folder, args.layers)
        (folder / "parameters.txt").write_text(str(count))
        return 0
    folder, count = ensure_model(work, args.layers)
    print(f"model: {folder} ({count / 1e9:.2f}B parameters)")
    data = work / f"data-{args.rows}x{args.max_length}.jsonl"
    write_data(data, folder, args.rows, args.max_length)
    rows = [measure(folder, data, work, item, args) for item in args.runs.split(",")]
    text = table(rows)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    (work / "results.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
