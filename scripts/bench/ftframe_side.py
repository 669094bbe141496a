"""ftframe's side of the training benchmark: one process, one training run, one JSON line on stdout.

Trains with the real ``lora`` backend on the Lightning engine (the same code path as
``python -m ftframe``) on a chat-JSONL file, then evaluates the tuned model on a test file three ways:
one-by-one greedy generation (what the peer does), batched greedy generation with left padding, and
label scoring by log-likelihood in one batched pass. Run in its own process so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch


def args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True, help="HF model folder (the embedded model's cached conversion)")
    p.add_argument("--train", required=True)
    p.add_argument("--test", default=None)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--bs", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--precision", default="auto", help="fp32, bf16-mixed, bf16-true or auto")
    p.add_argument("--no-fast-head", action="store_true", help="lever off: LM head over every position")
    p.add_argument("--no-group-by-length", action="store_true", help="lever off: random batches")
    p.add_argument("--attention", default="auto", help="lever: training attention kernel (auto, eager, sdpa)")
    p.add_argument("--adapter-compute", default="auto", help="lever: LoRA maths on the bf16 base (auto, bf16, fp32)")
    p.add_argument("--no-lean-adapter", action="store_true", help="lever off: peft's own adapter forward")
    p.add_argument("--no-packing", action="store_true", help="lever off: padded batches (no packing, no shared prefix)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--eval-modes", default="one_by_one,batched,score",
                   help="comma list of one_by_one, batched, score ('' to skip evaluation)")
    return p.parse_args()


def main() -> None:
    a = args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from lightning.fabric.utilities.seed import seed_everything

    from ftframe.config.compose import compose
    from ftframe.engine import TrainJob
    from ftframe.engine.evaluate import predict, score_predictions
    from ftframe.plugins import Registry, get_plugin_manager

    pm = get_plugin_manager()
    registry = Registry(pm)
    overrides = [
        "model=hf_local", f"model.path={a.model}", "data=chat_jsonl", f"data.path={a.train}",
        f"backend.epochs={a.epochs}", f"backend.batch_size={a.bs}", f"backend.lr={a.lr}",
        f"backend.r={a.rank}", f"backend.alpha={2 * a.rank}", "backend.target_modules=all-linear",
        "backend.scheduler=cosine", "backend.warmup_steps=1", "backend.dropout=0.0",
        f"backend.precision={a.precision}", "backend.max_length=512",
        f"backend.fast_head={not a.no_fast_head}", f"backend.group_by_length={not a.no_group_by_length}",
        f"backend.attention={a.attention}", f"backend.adapter_compute={a.adapter_compute}",
        f"backend.lean_adapter={not a.no_lean_adapter}", f"backend.packing={not a.no_packing}",
        "trainer.enable_progress_bar=false", "eval.batch_size=64", "eval.max_new_tokens=12",
    ]
    cfg = compose(overrides, registry=registry)
    fmt = registry.create("data_format", "chat_jsonl", cfg.data)
    train = fmt.load().examples
    seed_everything(0, workers=True, verbose=False)
    backend = registry.create("backend", "lora", cfg.backend)
    model_source = registry.create("model_source", "hf_local", cfg.model)
    from ftframe.api import TaskInfo

    labels = sorted({ex.target for ex in train if ex.target})
    task = TaskInfo(name="banking77", type="classification", labels=labels)
    metrics = {name: registry.create("metric", name, opts) for name, opts in cfg.metrics.items()}
    with tempfile.TemporaryDirectory() as tmp:
        job = TrainJob(config=cfg, model_source=model_source, train=train, val=[], task=task, metrics=metrics,
                       run_dir=Path(tmp), seed=0, trainer_config=cfg.trainer, eval_config=cfg.eval, pm=pm)
        trained = backend.train(job)
    info = trained.info
    out: dict = {"system": "ftframe", "precision": info["precision"], "fast_head": not a.no_fast_head,
                 "group_by_length": not a.no_group_by_length,
                 "attention": a.attention, "adapter_compute": cfg.backend.adapter_compute,
                 "lean_adapter": not a.no_lean_adapter, "packing": not a.no_packing,
                 "train_examples": len(train), "epochs": a.epochs,
                 "trained_tokens": info["trained_tokens"], "computed_tokens": info["computed_tokens"],
                 "packed_batches": info["packed_batches"], "train_wall_s": info["train_seconds"],
                 "tokens_per_s": info["tokens_per_second"], "steps": info["steps"]}
    modes = [m for m in a.eval_modes.split(",") if m]
    if a.test and modes:
        test = registry.create("data_format", "chat_jsonl", {"path": a.test}).load().examples
        out["test_examples"] = len(test)
        predictor = trained.predictor
        answers: dict[str, list[str]] = {}
        for mode in modes:
            predictor.batch_size = 1 if mode == "one_by_one" else 64
            t0 = time.perf_counter()
            preds = predict(predictor, test, task, mode="score" if mode == "score" else "generate",
                            max_new_tokens=12)
            seconds = time.perf_counter() - t0
            values = score_predictions(preds, metrics, task)["values"]
            answers[mode] = [p.predicted for p in preds]
            out[f"eval_{mode}"] = {"seconds": round(seconds, 2), "accuracy": round(values["accuracy"], 4),
                                   "macro_f1": round(values["macro_f1"], 4)}
        if "one_by_one" in answers:
            for mode, given in answers.items():
                if mode != "one_by_one":
                    same = sum(x == y for x, y in zip(given, answers["one_by_one"]))
                    out[f"eval_{mode}"]["agrees_with_one_by_one"] = round(same / len(test), 4)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
