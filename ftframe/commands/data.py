"""``ftframe data check PATH [overrides]`` (the preflight report) and ``ftframe data show PATH [--index N]``
(an example exactly as the model sees it, trained tokens marked, template consistency checked)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ftframe.errors import DataError

EXIT_PROBLEMS = 1


def _compose(path: str, overrides: list[str]) -> tuple[Any, Any, Any]:
    """``(cfg, registry, pm)`` for ``path`` read as in a run (``data=auto`` unless a format is named); bad rows
    are collected, not raised, so every problem is reported. Options of one format given without naming it
    (``data.split=test``, as a format's hint says) read the file with the detected format. Every input path is
    checked first, with the messages of ``ftframe validate`` and the run."""
    from dataclasses import fields

    from ftframe.config.compose import compose
    from ftframe.engine.data_source import AutoDataConfig, detect
    from ftframe.plugins import Registry, get_plugin_manager
    from ftframe.preflight.input_paths import config_input_problems

    pm = get_plugin_manager()
    registry = Registry(pm)
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    named = "data" in keys or _task_names_a_format(overrides, registry)
    auto_keys = {f.name for f in fields(AutoDataConfig)}
    fmt = "data=auto"
    if not named and any(k.startswith("data.") and k.split(".")[1] not in auto_keys for k in keys):
        fmt = f"data={detect(pm, path)}"
    cfg = compose([*([] if named else [fmt]), *overrides, f"data.path={path}", "data.on_error=skip"],
                  registry=registry)
    problems = config_input_problems(cfg, registry)
    if problems:
        raise DataError("\n".join(problems) if len(problems) == 1 else
                        "\n".join(["several inputs cannot be read:", *(f"  - {p}" for p in problems)]))
    return cfg, registry, pm


def _task_names_a_format(overrides: list[str], registry: Any) -> bool:
    """Whether a ``+task=...`` among ``overrides`` chooses a data format of its own (its options, e.g.
    ``data.template``, belong to that format, so the file is read with it rather than detected)."""
    from ftframe.config.compose import compose

    tasks = [o for o in overrides if o.lstrip("+~").startswith("task=")]
    if not tasks:
        return False
    default = compose([], registry=registry).data.name
    return compose(tasks, registry=registry).data.name != default


def _load(cfg: Any, registry: Any, pm: Any) -> tuple[Any, str]:
    from ftframe.engine.data_source import load_data

    loaded, detected = load_data(cfg.data, registry, pm)
    return loaded, detected or str(cfg.data.name)


def check(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ftframe.preflight import throughput
    from ftframe.preflight.render import print_report
    from ftframe.preflight.stage import build, file_loader, prepare_data, write_report

    con = Console(stderr=args.json, highlight=False)
    cfg, registry, pm = _compose(args.path, args.overrides)
    loaded, fmt_name = _load(cfg, registry, pm)
    splits, info = prepare_data(cfg, loaded, file_loader(cfg.data, registry, pm))
    model_source = registry.create("model_source", str(cfg.model.name), cfg.model)
    backend = registry.create("backend", str(cfg.backend.name), cfg.backend)

    def measure(report: dict[str, Any]) -> dict[str, Any] | None:
        if args.no_measure or hasattr(backend, "estimate_cost") or not report["examples"]:
            return None
        con.print("measuring training throughput on this machine (no earlier run recorded one)…")
        loaded_model = model_source.load()  # type: ignore[attr-defined]
        seq = min(int(report["tokens"]["total"]["median"]) or 8, int(cfg.backend.get("max_length") or 512))
        return throughput.measure(loaded_model.model, seq_len=seq, batch_size=int(cfg.backend.get("batch_size") or 8))

    report = build(cfg, splits=splits, rejected=loaded.rejected, tokenizer=model_source.load_tokenizer(),  # type: ignore[attr-defined]
                   backend=backend, leak_level="warning", measure=measure,
                   info={"path": args.path, "format": fmt_name, "transforms": info})
    out = Path(args.out)
    paths = write_report(out, report)
    print_report(con, report)
    con.print(f"report: {paths[0]}; token-length histogram: {paths[1]}")
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    return EXIT_PROBLEMS if any(p["level"] == "error" for p in report["problems"]) else 0


def _marked(tokenizer: Any, messages: list[dict[str, Any]], tools: Any, max_length: int | None) -> tuple[Any, int, int]:
    """The training text as rich ``Text`` with trained tokens highlighted (and text past ``max_length``
    struck through), the number of tokens, and of trained tokens."""
    from rich.text import Text

    from ftframe.engine.chat import encode, trained_spans

    text, _ = trained_spans(tokenizer, messages, tools)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = encode(tokenizer, messages, tools=tools).labels
    out = Text()
    pos = 0
    for j, (start, end) in enumerate(enc["offset_mapping"]):
        if start > pos:
            out.append(text[pos:start])
        style = "bold black on green" if labels[j] != -100 else ""
        if max_length is not None and j >= max_length:
            style = "strike dim"
        if max_length is not None and j == max_length:
            out.append(f"✂[max_length {max_length}]", style="bold red")
        out.append(text[start:end], style=style)
        pos = max(pos, end)
    out.append(text[pos:])
    return out, len(labels), sum(1 for t in labels if t != -100)


def template_mismatch(tokenizer: Any, messages: list[dict[str, Any]], tools: Any) -> str | None:
    """Where the inference prompt (``add_generation_prompt=True``) of each assistant turn differs from the
    text and tokens training uses before that turn, or None when they agree."""
    from ftframe.engine.chat import prompt_ids, render

    full = render(tokenizer, messages, tools=tools)
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]  # what training feeds (encode tokenises the same text)
    for i, m in enumerate(messages):
        if m.get("role") != "assistant" or i == 0:
            continue
        prompt = render(tokenizer, messages[:i], generation_prompt=True, tools=tools)
        if not full.startswith(prompt):
            at = next(k for k, (a, b) in enumerate(zip(full, prompt)) if a != b) if any(
                a != b for a, b in zip(full, prompt)) else min(len(full), len(prompt))
            return (f"message {i}: the inference prompt differs from the training text at character {at}: "
                    f"training {full[at:at + 40]!r} vs inference {prompt[at:at + 40]!r}")
        p_ids = prompt_ids(tokenizer, messages[:i], tools)
        if ids[:len(p_ids)] != p_ids:
            return (f"message {i}: the inference prompt tokenises differently from the same text in training "
                    f"(token boundaries differ at the reply), so the model would see a prompt it never trained on")
    return None


def show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.panel import Panel

    from ftframe.engine.chat import tool_rendering_problem
    from ftframe.preflight.tool_render import HINT

    con = Console(highlight=False)
    cfg, registry, pm = _compose(args.path, args.overrides)
    loaded, fmt_name = _load(cfg, registry, pm)
    if not loaded.examples:
        raise DataError(f"{args.path}: no usable example ({len(loaded.rejected)} rejected; `ftframe data check` "
                        f"lists why).")
    if not 0 <= args.index < len(loaded.examples):
        raise DataError(f"--index {args.index}: {args.path} has {len(loaded.examples)} usable examples "
                        f"(0 to {len(loaded.examples) - 1}).")
    ex = loaded.examples[args.index]
    model_source = registry.create("model_source", str(cfg.model.name), cfg.model)
    tokenizer = model_source.load_tokenizer()  # type: ignore[attr-defined]
    max_length = cfg.backend.get("max_length")
    convs = ([("chosen", [*ex.messages, ex.chosen]), ("rejected", [*ex.messages, ex.rejected])]
             if ex.is_preference else [("", ex.messages)])
    con.print(f"{ex.source} ({fmt_name}), rendered with the chat template of {cfg.model.name}; "
              f"[bold black on green]trained tokens[/] highlighted")
    status, consistent = 0, True
    for label, messages in convs:
        mismatch = template_mismatch(tokenizer, messages, ex.tools)
        if mismatch:  # trained tokens cannot be located either: show the plain training text
            from rich.text import Text

            from ftframe.engine.chat import render

            con.print(Panel(Text(render(tokenizer, messages, tools=ex.tools)), title=f"{label} training text",
                            title_align="left"))
            con.print(f"[red]error:[/] training and inference templates differ: {mismatch}. Use a model whose chat "
                      f"template renders each turn independently, or fix its template.")
            status, consistent = EXIT_PROBLEMS, False
            continue
        lost = tool_rendering_problem(tokenizer, messages, ex.tools)
        if lost:
            con.print(f"[red]error:[/] the chat template of {cfg.model.name} drops tool content: {lost}. To train on "
                      f"tool calls, {HINT}.")
            status = EXIT_PROBLEMS
        text, n, n_trained = _marked(tokenizer, messages, ex.tools, max_length)
        title = f"{label + ': ' if label else ''}{n} tokens, {n_trained} trained"
        if max_length and n > max_length:
            title += f", over max_length={max_length} (transforms.too_long={cfg.transforms.too_long})"
        con.print(Panel(text, title=title, title_align="left"))
    if consistent:
        con.print("[green]✓[/] inference prompt (add_generation_prompt) = the training text before each reply")
    return status


def add_parser(sub: Any) -> None:
    data = sub.add_parser("data", help="check data files before training, and show examples as the model sees them")
    dsub = data.add_subparsers(dest="data_command", required=True)
    ck = dsub.add_parser("check", help="preflight report: format errors, tokens, balance, duplicates, leakage, "
                                       "cost/time")
    ck.add_argument("path", help="the data file or folder")
    ck.add_argument("overrides", nargs="*", help="as for a run, e.g. +task=triage data=csv_labels backend.max_length=256")
    ck.add_argument("--out", default="preflight", help="folder for preflight.json and preflight_tokens.png "
                                                       "(default: ./preflight)")
    ck.add_argument("--json", action="store_true", help="print the JSON report on stdout (the summary goes to stderr)")
    ck.add_argument("--no-measure", action="store_true",
                    help="do not time a forward/backward pass when no earlier run recorded a throughput")
    ck.set_defaults(func=check)
    sh = dsub.add_parser("show", help="render one example with the chat template, trained tokens marked")
    sh.add_argument("path", help="the data file or folder")
    sh.add_argument("overrides", nargs="*", help="as for a run, e.g. model=hf_local model.path=...")
    sh.add_argument("--index", type=int, default=0, help="which usable example (0-based; default 0)")
    sh.set_defaults(func=show)


