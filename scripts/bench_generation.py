#!/usr/bin/env python3
"""Generation speed: ftframe's batched greedy decoding against one-by-one decoding and transformers' ``generate``.

On the prompts of a task's test split (default: the whole Restaurant-8k test set, 3,731 prompts) with a
finished run's tuned model (``--run RUN_DIR``) or the untuned embedded model. Three ways to answer every
prompt, greedy, fp32, the same ``--max-new-tokens``:

- ``one-by-one``: ftframe's decoder with batches of one (a KV cache, no padding);
- ``generate``: transformers' ``generate(do_sample=False)`` on left-padded batches of ``--batch-size``
  prompts sorted by length (the usual way to batch it);
- ``ftframe``: ftframe's continuous batching (``LocalPredictor.generate``, batches of ``--batch-size`` that
  refill as rows end), free and, with ``--constrained``, under the task's JSON schema.

Reports wall time, generated tokens/s (tokens up to and including each answer's end token), the speed-up
over one-by-one, and how many answers equal one-by-one's. Each mode runs ``--reps`` times alternately;
the medians are reported. Run it on a quiet machine::

    python scripts/bench_generation.py --run outputs/restaurant8k/RUN --reps 3
    python scripts/bench_generation.py +task=triage --limit 215 --max-new-tokens 8   # triage's long prompts
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", default=["+task=restaurant8k"],
                   help="the task's overrides (default: +task=restaurant8k); ignored with --run")
    p.add_argument("--run", help="a finished run dir: its tuned model and its config's test split")
    p.add_argument("--limit", type=int, help="only the first N test prompts")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--constrained", action="store_true", help="also ftframe under the task's output schema")
    p.add_argument("--skip-generate", action="store_true", help="leave out transformers' generate")
    p.add_argument("--json", help="write the results here as JSON")
    return p.parse_args()


def load(args: argparse.Namespace):
    """``(model, tokenizer, prompts, output_schema, name)``."""
    from ftframe.engine.evaluate import task_info
    from ftframe.plugins import Registry, get_plugin_manager
    from ftframe.preflight.stage import file_loader, prepare_data
    from ftframe.testing import compose

    pm = get_plugin_manager()
    registry = Registry(pm)
    if args.run:
        from ftframe.engine.saved_run import load_saved_run

        saved = load_saved_run(args.run)
        cfg, model, tokenizer, name = saved.config, saved.model, saved.tokenizer, f"tuned ({args.run})"
    else:
        cfg = compose(args.overrides, pm=pm)
        loaded = registry.create("model_source", str(cfg.model.name), cfg.model).load(dtype="fp32")
        model, tokenizer, name = loaded.model, loaded.tokenizer, f"untuned {cfg.model.name}"
    from ftframe.engine.data_source import load_data

    data, _ = load_data(cfg.data, registry, pm)
    splits, _ = prepare_data(cfg, data, file_loader(cfg.data, registry, pm))
    test = splits["test"][: args.limit] if args.limit else splits["test"]
    return model.float().eval(), tokenizer, [ex.prompt for ex in test], task_info(cfg).output_schema, name


def generated(rows_tokens: list[list[int]], end: set[int]) -> int:
    """Tokens generated: up to and including the end token (what the model had to compute)."""
    total = 0
    for tokens in rows_tokens:
        cut = next((i + 1 for i, t in enumerate(tokens) if t in end), len(tokens))
        total += cut
    return total


def hf_generate(model, tokenizer, encoded: list[list[int]], batch: int, max_new: int, end: list[int]) -> list[list[int]]:
    from ftframe.engine.chat import pad_id

    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out: list[list[int]] = [[] for _ in encoded]
    pad = pad_id(tokenizer)
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        n = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), n), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), n), dtype=torch.long)
        for r, i in enumerate(idx):
            ids[r, n - len(encoded[i]):] = torch.tensor(encoded[i])
            mask[r, n - len(encoded[i]):] = 1
        with torch.no_grad():
            res = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False,
                                 pad_token_id=pad, eos_token_id=end)
        for r, i in enumerate(idx):
            tokens = res[r, n:].tolist()
            cut = next((k + 1 for k, t in enumerate(tokens) if t in end), len(tokens))
            out[i] = tokens[:cut]
    return out


def main() -> int:
    args = parse()
    from ftframe.engine.constrain import response_format_for_schema
    from ftframe.engine.decoding import Row, decode_all, end_token_ids
    from ftframe.engine.predict import LocalPredictor, evaluating

    model, tokenizer, prompts, schema, name = load(args)
    predictor = LocalPredictor(model, tokenizer, batch_size=args.batch_size, precision="fp32")
    encoded = predictor._encode_prompts(prompts)
    end = end_token_ids(model, tokenizer)
    print(f"{name}: {len(prompts)} prompts, mean {statistics.mean(map(len, encoded)):.0f} prompt tokens, "
          f"batch {args.batch_size}, max_new_tokens {args.max_new_tokens}, {torch.get_num_threads()} threads",
          file=sys.stderr)

    def ftframe_rows(batch: int, grammar=None) -> list[list[int]]:
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        rows = [Row(encoded[i], args.max_new_tokens, key=i, grammar=grammar) for i in order]
        with evaluating(model, "fp32"):
            decode_all(predictor.decoder(), rows, batch_size=batch)
        out: list[list[int]] = [[] for _ in encoded]
        for r in rows:
            out[r.key] = r.tokens
        return out

    modes = {"one-by-one": lambda: ftframe_rows(1), "ftframe batched": lambda: ftframe_rows(args.batch_size)}
    if not args.skip_generate:
        modes["transformers generate"] = lambda: hf_generate(model, tokenizer, encoded, args.batch_size,
                                                             args.max_new_tokens, end)
    if args.constrained and schema is not None:
        grammar = predictor.grammar(response_format_for_schema(schema))
        modes["ftframe batched, schema-constrained"] = lambda: ftframe_rows(args.batch_size, grammar)
    times: dict[str, list[float]] = {m: [] for m in modes}
    answers: dict[str, list[list[int]]] = {}
    for rep in range(args.reps):
        for mode, fn in modes.items():
            t0 = time.perf_counter()
            answers[mode] = fn()
            times[mode].append(time.perf_counter() - t0)
            print(f"rep {rep + 1} {mode}: {times[mode][-1]:.1f} s", file=sys.stderr)
    base = answers["one-by-one"]
    one = statistics.median(times["one-by-one"])
    results = []
    print("\n| mode | wall (median) | generated tokens/s | speed-up vs one-by-one | answers equal to one-by-one |")
    print("|---|---|---|---|---|")
    for mode in modes:
        wall = statistics.median(times[mode])
        tokens = generated(answers[mode], set(end))
        same = sum(a == b for a, b in zip(answers[mode], base))
        results.append({"mode": mode, "seconds": times[mode], "median_s": wall, "tokens": tokens,
                        "tokens_per_s": tokens / wall, "speedup": one / wall, "equal": same, "n": len(base)})
        print(f"| {mode} | {wall:.1f} s | {tokens / wall:.0f} | {one / wall:.2f}x | {same}/{len(base)} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": name, "prompts": len(prompts), "batch_size": args.batch_size,
                                               "max_new_tokens": args.max_new_tokens, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
