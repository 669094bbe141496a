#!/usr/bin/env python3
"""Load test of ``ftframe serve`` on loopback: the batching server against the one-request-at-a-time server.

Both serve the same finished run's model, each in its own process on a free loopback port:

- ``batched``: today's server (``ftframe.serving``; every request joins one decoding batch);
- ``serial``: the server as it was before batching (``ftframe/serving.py`` at git revision ``--serial-rev``,
  read with ``git show``: one lock, each request generated alone with transformers' ``generate``), by
  default on the weights the batched server holds (fp32, adapter merged), so both compute the same greedy
  answers; ``--serial-weights as-loaded`` runs it as it ran, on the weights as loaded (a bf16 run: bf16, which
  on a CPU decodes faster, memory-bound, and answers differently where bf16 rounding flips a choice).

For each client count (``--clients``, default 1, 8, 32), every client sends ``--requests`` requests one
after another (half of the clients stream), greedy, prompts drawn in turn from the run's test split.
Reported per server and client count: p50/p95 latency, aggregate generated tokens/s (completion tokens of
all requests / wall time), 5xx answers, whether every answer equals the serial server's answer to the same
prompt, whether every stream had exactly one finish chunk and ended with ``[DONE]`` with its text equal to
the non-streamed answer, and the server's RSS before and after. Bounded in count and time; loopback only::

    python scripts/bench_serve.py RUN_DIR --clients 1 8 32 --requests 8 --max-tokens 32
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SERVER = r"""
import importlib.util, sys, uvicorn
from ftframe.engine.saved_run import load_saved_run
saved = load_saved_run(sys.argv[1])
kind, port = sys.argv[2], int(sys.argv[3])
if kind == "serial":
    if sys.argv[5] == "fp32":  # the weights the batched server holds: fp32, adapter merged
        from ftframe.engine.predict import evaluating
        held = evaluating(saved.model, "fp32"); held.__enter__()
    spec = importlib.util.spec_from_file_location("serial_serving", sys.argv[4])
    mod = importlib.util.module_from_spec(spec); sys.modules["serial_serving"] = mod; spec.loader.exec_module(mod)
    app = mod.create_app(mod.ModelServer(saved.model, saved.tokenizer, "bench"))
else:
    from ftframe.serving import ModelServer, ServeOptions, create_app
    app = create_app(ModelServer(saved.model, saved.tokenizer, "bench", ServeOptions(max_batch=int(sys.argv[4]))))
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--requests", type=int, default=8, help="requests per client")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--serial-rev", default="448bb38", help="git revision of the serial server")
    p.add_argument("--serial-weights", choices=("fp32", "as-loaded"), default="fp32",
                   help="fp32: the serial server holds the weights the batched one does (fp32, adapter merged: "
                        "the same greedy answers); as-loaded: as that server ran, on the run's weights as "
                        "loaded (bf16 for a bf16 run, adapter unmerged)")
    p.add_argument("--only", choices=("batched", "serial"), help="run one server only")
    p.add_argument("--json", help="write the results here")
    return p.parse_args()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind: str, run_dir: str, extra: str, weights: str = "fp32") -> tuple[subprocess.Popen, str]:
    import httpx2 as httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, run_dir, kind, str(port), extra, weights],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the {kind} server exited: {proc.stderr.read()[-2000:]}")
        try:
            httpx.get(f"{url}/models", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit(f"the {kind} server did not start")


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def one(url: str, prompt: list[dict], stream: bool, max_tokens: int) -> dict:
    import httpx2 as httpx

    body = {"model": "bench", "messages": prompt, "max_tokens": max_tokens, "temperature": 0}
    t0 = time.perf_counter()
    if not stream:
        r = httpx.post(f"{url}/chat/completions", json=body, timeout=600)
        out = {"status": r.status_code, "seconds": time.perf_counter() - t0, "stream": False}
        if r.status_code == 200:
            data = r.json()
            out.update(text=data["choices"][0]["message"]["content"], tokens=data["usage"]["completion_tokens"])
        return out
    body.update(stream=True, stream_options={"include_usage": True})
    text, finishes, done, tokens, status = "", 0, False, 0, 0
    with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=600) as r:
        status = r.status_code
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices", []):
                text += choice["delta"].get("content") or ""
                finishes += choice.get("finish_reason") is not None
    return {"status": status, "seconds": time.perf_counter() - t0, "stream": True, "text": text, "tokens": tokens,
            "stream_ok": done and finishes == 1}


def load_test(url: str, prompts: list[list[dict]], clients: int, requests: int, max_tokens: int) -> tuple[list[dict], float]:
    def client(c: int) -> list[dict]:
        out = []
        for r in range(requests):
            i = (c * requests + r) % len(prompts)
            res = one(url, prompts[i], stream=c % 2 == 1, max_tokens=max_tokens)
            res["prompt"] = i
            out.append(res)
        return out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = [res for batch in pool.map(client, range(clients)) for res in batch]
    return results, time.perf_counter() - t0


def main() -> int:
    args = parse()
    from ftframe.engine.saved_run import load_saved_run

    saved = load_saved_run(args.run_dir)
    prompts = [ex.prompt for ex in saved.split("test")]
    del saved
    with tempfile.TemporaryDirectory() as tmp:
        serial_src = Path(tmp) / "serial_serving.py"
        serial_src.write_text(subprocess.run(["git", "-C", str(ROOT), "show", f"{args.serial_rev}:ftframe/serving.py"],
                                             capture_output=True, text=True, check=True).stdout)
        kinds = [args.only] if args.only else ["serial", "batched"]
        rows, answers = [], {}
        for kind in kinds:
            proc, url = start(kind, args.run_dir, str(serial_src) if kind == "serial" else str(args.max_batch),
                              args.serial_weights)
            try:
                one(url, prompts[0], False, 4)  # warm-up
                rss0 = rss_mb(proc.pid)
                for clients in args.clients:
                    results, wall = load_test(url, prompts, clients, args.requests, args.max_tokens)
                    lat = sorted(r["seconds"] for r in results)
                    ok = [r for r in results if r["status"] == 200]
                    for r in ok:
                        answers.setdefault((kind, r["prompt"]), set()).add(r["text"])
                    rows.append({
                        "server": kind, "clients": clients, "requests": len(results), "wall_s": wall,
                        "p50_s": statistics.median(lat), "p95_s": lat[min(len(lat) - 1, int(0.95 * len(lat)))],
                        "tokens_per_s": sum(r["tokens"] for r in ok) / wall,
                        "errors_5xx": sum(r["status"] >= 500 for r in results),
                        "non_200": sum(r["status"] != 200 for r in results),
                        "streams_ok": all(r.get("stream_ok", True) for r in ok), "rss_mb": rss_mb(proc.pid)})
                    print(json.dumps(rows[-1]), file=sys.stderr)
                rows[-1]["rss_start_mb"] = rss0
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    same, differ = None, []
    if not args.only:
        keys = {p for k, p in answers if k == "batched"}
        differ = [{"prompt": p, "batched": sorted(answers[("batched", p)]), "serial": sorted(answers.get(("serial", p), []))}
                  for p in keys
                  if answers.get(("batched", p)) != answers.get(("serial", p)) or len(answers[("batched", p)]) != 1]
        same = len(keys) - len(differ), len(keys)
    print("\n| server | clients | requests | p50 latency | p95 latency | generated tokens/s | 5xx | streams intact | server RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['server']} | {r['clients']} | {r['requests']} | {r['p50_s']:.2f} s | {r['p95_s']:.2f} s | "
              f"{r['tokens_per_s']:.1f} | {r['errors_5xx']} | {'yes' if r['streams_ok'] else 'NO'} | {r['rss_mb']:.0f} MB |")
    by = {(r["server"], r["clients"]): r for r in rows}
    for clients in args.clients:
        if ("batched", clients) in by and ("serial", clients) in by:
            ratio = by[("batched", clients)]["tokens_per_s"] / by[("serial", clients)]["tokens_per_s"]
            print(f"{clients} clients: batched/serial aggregate tokens/s = {ratio:.2f}x")
    if same is not None:
        print(f"prompts answered identically by both servers (and the same every time): {same[0]}/{same[1]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "identical": same, "differ": differ}, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
