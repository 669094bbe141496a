"""``ftframe predict RUN_DIR --input file.jsonl [--output out.jsonl]``: batch inference with a finished run's model.

Each input line is a chat example ``{"messages": [...], "tools"?: [...]}``; when the last message is
the assistant's it is the gold answer (kept beside the prediction, not shown to the model). Output lines
have the shape of the run's own ``predictions.jsonl`` and the file is written atomically.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ftframe.api import Example
from ftframe.errors import DataError
from ftframe.preflight.format_checks import json_problem

ROLES = ("system", "developer", "user", "assistant", "tool")


def read_inputs(path: Path) -> list[Example]:
    """Chat examples from ``path``; a :class:`DataError` naming ``file:line`` for the first bad row."""
    from ftframe.preflight.input_paths import input_problem, os_error_message

    problem = input_problem(path, "--input", "file", records=True)
    if problem:
        raise DataError(problem)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(os_error_message(exc, "--input", path)) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid utf-8 text (byte {exc.start}); re-save the file as UTF-8.") from None
    examples = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: malformed JSON ({json_problem(exc)}).") from exc
        messages = record.get("messages") if isinstance(record, dict) else None
        if not isinstance(messages, list) or not messages:
            raise DataError(f"{where}: expected an object with a non-empty 'messages' list.")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content", ""), str | None):
                raise DataError(f"{where}: messages[{i}] needs a role ({', '.join(ROLES)}) and string content.")
        example = Example(messages=messages, source=where, tools=record.get("tools"))
        if not example.prompt:
            raise DataError(f"{where}: nothing to answer (the only message is the assistant's).")
        examples.append(example)
    if not examples:
        raise DataError(f"--input {path}: no examples in the file.")
    return examples


def run(args: argparse.Namespace) -> int:
    from ftframe import console as ui
    from ftframe.engine.evaluate import predict
    from ftframe.engine.saved_run import load_saved_run
    from ftframe.io import write_jsonl

    examples = read_inputs(Path(args.input))
    saved = load_saved_run(args.run_dir)
    cfg = saved.config
    task = saved.task
    labels = task.labels
    mode = args.mode or ("generate" if cfg.eval.mode == "both" else str(cfg.eval.mode))
    if mode == "score" and not labels:
        raise DataError("--mode score needs the run's label set, and this run has none; use --mode generate.")
    max_new = args.max_new_tokens or int(cfg.eval.max_new_tokens)
    output = Path(args.output) if args.output else Path(args.input).with_suffix(".predictions.jsonl")
    con = ui.get_console()
    with ui.progress_bar(con, f"predict ({mode})", len(examples)) as advance:
        preds = predict(saved.predictor(batch_size=args.batch_size), examples, task, mode=mode,
                        max_new_tokens=max_new, progress=advance)
    write_jsonl(output, [p.to_record() for p in preds])
    con.print(f"{len(preds)} predictions → {output}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("predict", help="batch inference with a finished run's model")
    p.add_argument("run_dir", help="the folder a job wrote (holds config.yaml and manifest.json)")
    p.add_argument("--input", required=True, help="chat JSONL: one {\"messages\": [...]} per line")
    p.add_argument("--output", help="predictions JSONL (default: INPUT with suffix .predictions.jsonl)")
    p.add_argument("--mode", choices=("generate", "score"),
                   help="greedy generation or label scoring (default: as the run evaluated)")
    p.add_argument("--max-new-tokens", type=int, help="default: the run's eval.max_new_tokens")
    p.add_argument("--batch-size", type=int, help="default: the run's eval.batch_size")
    p.set_defaults(func=run)
