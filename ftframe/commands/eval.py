"""``ftframe eval RUN_DIR_OR_MODEL [RUN_DIR ...] [overrides] [--out DIR]``: evaluate without training.

``RUN_DIR_OR_MODEL`` is a finished run dir (its tuned model, task, metrics and gate; by default its
saved test split), a model source name (``smollm2``) or a Hugging Face model folder (``hf_local``).
Several run dirs of one classification task evaluate as an ensemble: each scores the label set and
their log-probabilities are averaged (:mod:`ftframe.engine.ensemble`); config, data and gate come from
the first.
Overrides are as for ``python -m ftframe``; ``data=FILE`` is short for ``data=auto data.path=FILE``.
Exit status: 0 passed, 1 below a gate threshold, 2 unusable input.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ftframe.errors import ConfigError

TASK_KEYS = ("task", "data", "metrics", "gate", "eval", "split")
"""What ``+task=NAME`` sets (a task file is a global package)."""


def expand_overrides(overrides: list[str], data_formats: list[str]) -> list[str]:
    """``data=FILE`` (an existing path that is no data format's name) -> ``data=auto data.path=FILE``."""
    out = []
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep and key == "data" and value not in data_formats and value != "auto" and os.path.exists(value):
            out += ["data=auto", f"data.path={value}"]
        else:
            out.append(o)
    return out


def split_overrides(overrides: list[str]) -> tuple[set[str], list[str]]:
    """``(groups, dotted keys)``: ``metrics=[a]``/``data=x``/``+task=t`` choose whole nodes (``+task``: every
    node a task file sets); ``eval.mode=score``/``+gate.x=1`` change one value."""
    groups: set[str] = set()
    dotted: list[str] = []
    for o in overrides:
        key = o.partition("=")[0].lstrip("+~")
        if key == "task":
            groups |= set(TASK_KEYS)
        elif "." in key:
            dotted.append(key)
        else:
            groups.add(key.split("@")[0])
    return groups, dotted


def _load_examples(cfg: DictConfig, registry: Any, pm: Any) -> tuple[list[Any], list[Path]]:
    from ftframe.engine.data_source import load_data
    from ftframe.errors import DataError

    loaded, _ = load_data(cfg.data, registry, pm)
    if loaded.rejected:
        print(f"warning: {len(loaded.rejected)} rows of {cfg.data.path} rejected (first: {loaded.rejected[0].source}: "
              f"{loaded.rejected[0].reason})")
    if not loaded.examples:
        raise DataError(f"No usable examples in {cfg.data.get('path')}.")
    return loaded.examples, list(loaded.files)


def run(args: argparse.Namespace) -> int:
    from ftframe.config.compose import compose
    from ftframe.config.validate import validate
    from ftframe.engine.offline_eval import evaluate_model, task_info
    from ftframe.plugins import Registry, get_plugin_manager

    pm = get_plugin_manager()
    registry = Registry(pm)
    overrides = expand_overrides(list(args.overrides), registry.names("data_format"))
    target = args.target
    out = Path(args.out or f"outputs/eval/{datetime.now():%Y-%m-%d_%H-%M-%S}")
    limit = args.limit
    if target not in registry.names("model_source"):
        _refuse_unreadable(target)
    run_dirs, overrides = _run_dirs_first(target, overrides)
    if run_dirs:
        return _eval_run_dir(run_dirs, overrides, out, limit, registry, pm)
    if target in registry.names("model_source"):
        model = [f"model={target}"]
    elif os.path.isfile(Path(target) / "config.json"):
        model = ["model=hf_local", f"model.path={target}"]
    else:
        raise ConfigError(f"{target}: not a run dir (no manifest.json), a model source "
                          f"({', '.join(registry.names('model_source'))}) or a Hugging Face model folder "
                          f"(no config.json).")
    cfg = compose(model + overrides, registry=registry)
    if not cfg.data.get("path"):
        raise ConfigError("ftframe eval MODEL needs data: add data=FILE (or data=FORMAT data.path=FILE).")
    validate(cfg, registry)
    examples, files = _load_examples(cfg, registry, pm)
    examples = examples[:limit] if limit else examples
    from ftframe.engine.hparams import resolve_precision
    from ftframe.engine.predict import LocalPredictor

    source = registry.create("model_source", str(cfg.model.name), cfg.model)
    dtype = "bf16" if resolve_precision(str(cfg.backend.get("precision", "fp32"))) == "bf16-true" else "fp32"
    loaded = source.load(dtype=dtype)  # type: ignore[attr-defined]
    predictor = LocalPredictor(loaded.model, loaded.tokenizer, name=f"{loaded.name} (base)",
                               batch_size=int(cfg.eval.batch_size), precision=str(cfg.eval.precision))
    result = evaluate_model(cfg, predictor, examples, out, registry=registry, task=task_info(cfg, examples),
                            source={"model": target, "data": str(cfg.data.path)}, inputs=files)
    return 0 if result.ok else 1


def _is_run_dir(path: str) -> bool:
    return os.path.isfile(Path(path) / "manifest.json")


def _refuse_unreadable(target: str) -> None:
    """A run dir or model folder this process may not read is refused as every input path is (not taken for
    a missing run dir); a path that does not exist is left to the messages below."""
    from ftframe.engine.saved_run import RunDirError
    from ftframe.preflight.input_paths import input_problem

    try:
        os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError:
        pass
    problem = input_problem(target, "RUN_DIR_OR_MODEL", "folder", deep=False)
    if problem:
        raise RunDirError(problem)


def _run_dirs_first(target: str, args: list[str]) -> tuple[list[Path], list[str]]:
    """``(run dirs, overrides)``: with a run dir as the target, further run dirs (ensemble members) may
    follow it; every other argument must be an override (``KEY=VALUE``)."""
    if not _is_run_dir(target):
        return [], args
    run_dirs, overrides = [Path(target)], []
    for a in args:
        if "=" in a:
            overrides.append(a)
            continue
        _refuse_unreadable(a)
        if not _is_run_dir(a):
            raise ConfigError(f"{a}: neither a finished run dir (no manifest.json there) nor an override "
                              f"(KEY=VALUE). Pass run dirs to evaluate them as an ensemble, and overrides "
                              f"such as data=FILE.")
        run_dirs.append(Path(a))
    return run_dirs, overrides


def _eval_run_dir(run_dirs: list[Path], overrides: list[str], out: Path, limit: int | None, registry: Any,
                  pm: Any) -> int:
    from ftframe.config.compose import compose
    from ftframe.config.validate import validate
    from ftframe.engine.ensemble import EnsemblePredictor, ensemble_labels, saved_run_member
    from ftframe.engine.offline_eval import evaluate_model, task_info
    from ftframe.engine.saved_run import load_saved_run

    run_dir = run_dirs[0]
    members = len(run_dirs)
    if members > 1:
        ensemble_labels(run_dirs)  # every member shares the first one's label set: checked before loading weights
    saved = load_saved_run(run_dir, pm=pm)
    groups, dotted = split_overrides(overrides)
    cfg = saved.config
    if overrides:
        # Compose the overrides on the defaults, then carry into the run's config what they name: a chosen
        # group replaces the run's node (metrics=[a] means exactly a), a dotted key changes one value.
        fresh = compose([f"model={cfg.model.name}", *overrides], registry=registry)
        merged: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        for key in groups:
            if key in fresh:
                merged[key] = OmegaConf.to_container(fresh[key], resolve=True)
        cfg = OmegaConf.create(merged)
        for key in dotted:
            value = OmegaConf.select(fresh, key)
            OmegaConf.update(cfg, key, OmegaConf.to_container(value, resolve=True)
                             if isinstance(value, DictConfig) else value, force_add=True)
    if members > 1 and cfg.eval.mode != "score":
        print(f"note: an ensemble scores the label set; eval.mode={cfg.eval.mode} becomes score.")
        cfg.eval.mode = "score"
    validate(cfg, registry)
    labels = saved.task.labels
    baseline = None
    if "data" in groups or any(k.startswith("data.") for k in dotted):
        examples, files = _load_examples(cfg, registry, pm)
        data_name = str(cfg.data.path)
    else:
        examples, files = saved.split("test"), [run_dir / "data" / "test.jsonl"]
        data_name = str(files[0])
        baseline = saved.predictions("baseline_") or None  # the same examples: a preference metric can use it
    examples = examples[:limit] if limit else examples
    if baseline is not None and limit:
        baseline = baseline[:limit]
    batch_size = int(cfg.eval.batch_size)
    source: dict[str, Any] = {"run_dir": str(run_dir), "data": data_name, "weights": saved.weights}
    if members == 1:
        predictor = saved.predictor(batch_size=batch_size)
    else:
        # The first member is loaded already; its predictor is made when it scores, so that no reference
        # keeps its model alive while the next member loads.
        predictor = EnsemblePredictor(
            [lambda: (saved.predictor(batch_size=batch_size), saved.release),
             *(saved_run_member(d, pm=pm, batch_size=batch_size) for d in run_dirs[1:])],
            labels or [], name=f"ensemble of {members} {cfg.task.name} runs")
        source["ensemble"] = [str(d) for d in run_dirs]
        baseline = None
    result = evaluate_model(cfg, predictor, examples, out, registry=registry, task=task_info(cfg, examples, labels),
                            source=source, inputs=files, baseline=baseline)
    saved.release()
    return 0 if result.ok else 1


def add_parser(sub: Any) -> None:
    ev = sub.add_parser("eval", help="evaluate a saved run or a base model on data, without training",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("target", metavar="RUN_DIR_OR_MODEL",
                    help="a run dir, a model source name (smollm2) or a Hugging Face model folder")
    ev.add_argument("overrides", nargs="*", metavar="[RUN_DIR ...] [OVERRIDE ...]",
                    help="more run dirs after a run dir: evaluate them as an ensemble (classification); "
                         "overrides, e.g. data=golden.jsonl metrics=[exact_match,field_f1] +gate.exact_match=0.8")
    ev.add_argument("--out", help="output folder (default: outputs/eval/<time>)")
    ev.add_argument("--limit", type=int, help="evaluate at most this many examples")
    ev.set_defaults(func=run)
