"""Training throughput (tokens/s) of this machine, for the preflight time estimate.

Two sources, and the report says which one it used:

* **recorded**: every local run that trained appends its measured tokens/s (trained tokens over
  training seconds, as in the run summary) to ``throughput.jsonl`` in the ftframe cache dir
  (``$FTFRAME_CACHE_DIR``, default the user cache dir); the median of the last runs of the same model
  and backend on this machine is used.
* **measured**: where nothing is recorded, ``ftframe data check`` times a few forward+backward passes of
  the whole model on one batch of the data's median length. That trains every weight, so it is an
  upper bound on the cost of a LoRA step (which skips most of the backward pass).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from platformdirs import user_cache_dir

KEEP = 20
"""Recorded runs used per model and backend (the most recent)."""


def store_path() -> Path:
    return Path(os.environ.get("FTFRAME_CACHE_DIR") or user_cache_dir("ftframe")) / "throughput.jsonl"


def machine_key() -> str:
    return f"{platform.machine()}/{platform.processor() or '?'}/{os.cpu_count()}cpu"


def record(model: str, backend: str, tokens_per_second: float, trained_tokens: int) -> None:
    """Append one run's measured throughput (best effort: a read-only cache dir only skips it)."""
    if not tokens_per_second or tokens_per_second <= 0:
        return
    row = {"model": model, "backend": backend, "machine": machine_key(), "tokens_per_second": tokens_per_second,
           "trained_tokens": trained_tokens, "time": time.time()}
    try:
        path = store_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:  # one short line per append: no partial file to guard
            f.write(json.dumps(row) + "\n")
    except OSError:
        pass


def recorded(model: str, backend: str) -> dict[str, Any] | None:
    """``{"tokens_per_second", "source", "runs"}`` from earlier runs of ``model`` + ``backend`` here, or None."""
    path = store_path()
    if not path.is_file():
        return None
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("model") == model and row.get("backend") == backend and row.get("machine") == machine_key():
            rows.append(float(row["tokens_per_second"]))
    if not rows:
        return None
    rows = rows[-KEEP:]
    return {"tokens_per_second": round(statistics.median(rows), 1), "runs": len(rows),
            "source": f"recorded: median of the last {len(rows)} {backend} run(s) of {model} on this machine"}


def measure(model: Any, *, seq_len: int, batch_size: int, steps: int = 2) -> dict[str, Any]:
    """Time ``steps`` full forward+backward passes (after one warm-up) on a random batch."""
    import torch

    seq_len, batch_size = max(8, int(seq_len)), max(1, int(batch_size))
    vocab = int(model.config.vocab_size)
    ids = torch.randint(0, vocab, (batch_size, seq_len), generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.train()
    try:
        seconds = []
        for i in range(steps + 1):
            t0 = time.perf_counter()
            out = model(input_ids=ids, labels=ids)
            out.loss.backward()
            if i:
                seconds.append(time.perf_counter() - t0)
            model.zero_grad(set_to_none=True)
    finally:
        model.train(was_training)
    per_step = statistics.median(seconds)
    return {"tokens_per_second": round(batch_size * seq_len / per_step, 1),
            "source": f"measured: full-model forward+backward, {steps} steps of {batch_size}x{seq_len} tokens "
                      f"(an upper bound on a LoRA step's cost)"}
