"""``run(cfg) -> RunResult``: the whole job, stage by stage, each writing into the run dir.

prepare (load, validate, split) -> baseline eval -> train -> evaluate -> gate -> export -> manifest.

A plain function: ``@hydra.main`` only wraps it, tests call it directly, and a multirun calls it many
times in one process (no globals; the model is freed at the end).
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.seed import seed_everything
from omegaconf import DictConfig, OmegaConf

from ftframe import console as ui
from ftframe.api import Example, ExportContext, Metric, Prediction, TaskInfo
from ftframe.config.validate import validate
from ftframe.engine.data_source import load_data
from ftframe.engine.evaluate import decoding, evaluate, task_info
from ftframe.engine.export import run_exporters
from ftframe.engine.job import TrainJob
from ftframe.engine.ranks import is_global_zero
from ftframe.errors import DataError, PluginError
from ftframe.io import write_json, write_jsonl, write_text
from ftframe.manifest import file_hashes, model_file_hashes, new_manifest, now
from ftframe.plugins import Registry, call_hook, get_plugin_manager
from ftframe.preflight import throughput
from ftframe.preflight.stage import file_loader, model_key, preflight_stage, prepare_data, write_rejected


@dataclass
class RunResult:
    status: str
    """``succeeded``, ``gate_failed``, ``failed`` or ``interrupted``."""
    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    baseline_metrics: dict[str, Any] | None = None
    gate: dict[str, Any] = field(default_factory=dict)
    exports: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


def apply_gate(gate: dict[str, float], values: dict[str, float],
               lower_is_better: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """``{"passed": bool, "checks": {metric: {"min"|"max", "value", "passed"}}}``; a missing metric fails.

    A threshold is a minimum, or a maximum for the metrics in ``lower_is_better`` (e.g. perplexity).
    """
    checks = {}
    for name, bound in gate.items():
        value = values.get(name)
        if name in lower_is_better:
            checks[name] = {"max": float(bound), "value": value,
                            "passed": value is not None and value <= float(bound)}
        else:
            checks[name] = {"min": float(bound), "value": value,
                            "passed": value is not None and value >= float(bound)}
    return {"passed": all(c["passed"] for c in checks.values()), "checks": checks}


def gate_line(name: str, check: dict[str, Any]) -> str:
    """``pass macro_f1 = 0.7312 (min 0.6)`` for the console."""
    mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
    bound = f"min {check['min']}" if "min" in check else f"max {check['max']}"
    return f"{mark} {name} = {ui.fmt(check['value'])} ({bound})"


def run(cfg: DictConfig, run_dir: str | Path, *, pm: Any = None) -> RunResult:
    """Run one job described by the composed config ``cfg``, writing everything into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    con = ui.get_console()
    pm = pm or get_plugin_manager()
    registry = Registry(pm)
    validate(cfg, registry)
    if not is_global_zero():
        return _train_worker(cfg, run_dir, registry, pm)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    if cfg.get("threads"):  # before the manifest, which records the thread count (it can change the numbers)
        torch.set_num_threads(int(cfg.threads))
    manifest = new_manifest(resolved, int(cfg.seed))
    write_json(run_dir / "manifest.json", manifest)
    result = RunResult(status="failed", run_dir=run_dir)
    job: TrainJob | None = None
    started = time.perf_counter()
    # Seeds python, numpy and torch before any model exists: adapter initialisation draws from them.
    seed_everything(int(cfg.seed), workers=True, verbose=False)
    try:
        job, data_summary, predictions = _run_stages(cfg, run_dir, registry, pm, con, manifest, result)
        result.status = "succeeded" if result.gate.get("passed", True) else "gate_failed"
        if result.status == "succeeded":
            _export(cfg, run_dir, registry, con, job, result, resolved, data_summary, predictions, manifest)
    except KeyboardInterrupt:
        result.status, result.error = "interrupted", "interrupted by the user (Ctrl-C)"
        raise
    except Exception as exc:
        result.status = "failed"
        result.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        manifest.update(status=result.status, finished=now(), error=result.error,
                        wall_seconds=round(time.perf_counter() - started, 2),
                        metrics=result.metrics, baseline_metrics=result.baseline_metrics, gate=result.gate,
                        exports=result.exports)
        write_json(run_dir / "manifest.json", manifest)
        if job is not None:
            job.release_model()
        gc.collect()
        try:
            call_hook(pm, "ftframe_run_finished", config=cfg, result=result)
        except PluginError as exc:
            if result.error is None:
                raise
            con.print(f"[red]{exc}[/]")  # do not hide the run's own error behind an observer's
    _summary(con, cfg, result)
    return result


def _train_worker(cfg: DictConfig, run_dir: Path, registry: Registry, pm: Any) -> RunResult:
    """A process of a distributed run other than rank 0: the same data preparation, then training only.

    Rank 0 writes every file of the run, evaluates and exports; the other ranks join its training
    (Lightning's strategy) and return. Their preflight report goes to a scratch dir that is discarded.
    """
    import tempfile

    from rich.console import Console

    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    seed_everything(int(cfg.seed), workers=True, verbose=False)
    loaded, _ = load_data(cfg.data, registry, pm)
    splits, _ = prepare_data(cfg, loaded, file_loader(cfg.data, registry, pm))
    with tempfile.TemporaryDirectory(prefix="ftframe-rank-") as scratch:
        splits = preflight_stage(cfg, Path(scratch), Console(quiet=True), registry, loaded, splits, {}, {})
    backend = registry.create("backend", str(cfg.backend.name), cfg.backend)
    # The metrics only decide which way the monitored value is better (rank 0 scores and broadcasts).
    metrics = {name: registry.create("metric", name, opts) for name, opts in cfg.metrics.items()}
    job = TrainJob(config=cfg, model_source=registry.create("model_source", str(cfg.model.name), cfg.model),
                   train=splits["train"], val=splits["val"], task=task_info(cfg, splits["train"]), metrics=metrics,  # type: ignore[arg-type]
                   run_dir=run_dir, seed=int(cfg.seed), trainer_config=cfg.trainer, eval_config=cfg.eval, pm=pm)
    try:
        trained = backend.train(job)  # type: ignore[attr-defined]
    finally:
        job.release_model()
        gc.collect()
    return RunResult(status="succeeded", run_dir=run_dir, metrics={"train": trained.info})


def _run_stages(cfg: DictConfig, run_dir: Path, registry: Registry, pm: Any, con: Any,
                manifest: dict[str, Any], result: RunResult) -> tuple[TrainJob, dict[str, Any], list[Prediction]]:
    # ------------------------------------------------------------------ prepare
    ui.stage(con, "1/6 prepare data")
    loaded, detected = load_data(cfg.data, registry, pm)
    if detected:
        con.print(f"data=auto: {cfg.data.path} detected as [bold]{detected}[/]")
    splits, manifest["transforms"] = prepare_data(cfg, loaded, file_loader(cfg.data, registry, pm))
    manifest["inputs"] = file_hashes(loaded.files)
    if loaded.rejected:
        write_rejected(run_dir, loaded.rejected)
        con.print(f"[yellow]{len(loaded.rejected)} rows rejected[/] (reasons in {run_dir / 'rejected.jsonl'})")
    if not loaded.examples:
        raise DataError(f"No usable examples in {cfg.data.get('path')}: every row was rejected.")
    splits = preflight_stage(cfg, run_dir, con, registry, loaded, splits, manifest,
                             {"path": str(cfg.data.get("path")), "format": detected or str(cfg.data.name)})
    result.metrics["data"] = {"rejected": len(loaded.rejected),
                              "rejected_by_kind": dict(Counter(r.kind for r in loaded.rejected))}
    task = task_info(cfg, splits["train"])
    data_summary = {"path": str(cfg.data.get("path")), "format": detected or str(cfg.data.name),
                    "examples": len(loaded.examples),
                    "rejected": len(loaded.rejected), "splits": {k: len(v) for k, v in splits.items()},
                    "labels": task.labels, "files": manifest["inputs"]}
    golden = _load_golden(cfg, registry, pm, manifest, con) if cfg.eval.golden else []
    if not splits["train"] or not (splits["test"] or golden):
        raise DataError(f"Too few examples ({len(loaded.examples)}) for a train and a test split; "
                        f"add data or change split.* (or evaluate on a golden set: eval.golden).")
    con.print(f"{len(loaded.examples)} examples from {cfg.data.get('path')} → "
              + ", ".join(f"{k} {len(v)}" for k, v in splits.items())
              + (f"; {len(task.labels)} labels" if task.labels else ""))
    for name, rows in splits.items():
        write_jsonl(run_dir / "data" / f"{name}.jsonl", [ex.to_record() for ex in rows])

    metrics: dict[str, Metric] = {name: registry.create("metric", name, opts)  # type: ignore[misc]
                                  for name, opts in cfg.metrics.items()}
    backend = registry.create("backend", str(cfg.backend.name), cfg.backend)
    model_source = registry.create("model_source", str(cfg.model.name), cfg.model)
    job = TrainJob(config=cfg, model_source=model_source, train=splits["train"], val=splits["val"], task=task,
                   metrics=metrics, run_dir=run_dir, seed=int(cfg.seed), trainer_config=cfg.trainer,
                   eval_config=cfg.eval, pm=pm)
    test = splits["test"][: cfg.eval.limit] if cfg.eval.limit else splits["test"]

    # ------------------------------------------------------------------ baseline
    base_preds: dict[str, list[Prediction]] = {}
    if cfg.eval.baseline:
        ui.stage(con, "2/6 baseline evaluation (untuned model)")
        base = backend.baseline(job)  # type: ignore[attr-defined]
        if test:
            result.baseline_metrics, base_preds["test"] = _evaluate(con, cfg, base, test, task, metrics, run_dir,
                                                                    "baseline_", registry)
        if golden:
            base_golden, base_preds["golden"] = _evaluate(con, cfg, base, golden, task, metrics, run_dir,
                                                          "baseline_golden_", registry)
            if result.baseline_metrics is None:
                result.baseline_metrics = base_golden
            else:
                result.baseline_metrics["golden"] = base_golden
    # ------------------------------------------------------------------ train
    ui.stage(con, f"3/6 train ({cfg.backend.name})")
    trained = backend.train(job)  # type: ignore[attr-defined]
    result.metrics["train"] = trained.info
    if trained.info.get("tokens_per_second"):
        throughput.record(model_key(cfg), str(cfg.backend.name), trained.info["tokens_per_second"],
                          int(trained.info.get("trained_tokens") or 0))
    if job.loaded_model is not None:  # the local base model's files are inputs too
        manifest["inputs"] = {**manifest["inputs"], **model_file_hashes(job.loaded_model.path)}
    if trained.info.get("truncated"):
        con.print(f"[yellow]{trained.info['truncated']} training examples were longer than backend.max_length "
                  f"and were cut[/] (raise backend.max_length, or set transforms.too_long=drop or chunk)")
    # ------------------------------------------------------------------ evaluate
    ui.stage(con, "4/6 evaluate tuned model")
    tuned: dict[str, Any] = {}
    predictions: list[Prediction] = []
    if test:
        tuned, predictions = _evaluate(con, cfg, trained.predictor, test, task, metrics, run_dir, "", registry,
                                       base_preds.get("test"))
    gated = tuned
    if golden:
        gated, golden_preds = _evaluate(con, cfg, trained.predictor, golden, task, metrics, run_dir, "golden_",
                                        registry, base_preds.get("golden"))
        if not test:  # the golden set instead of a test split: it is the headline
            tuned, predictions = dict(gated), golden_preds
        tuned["golden"] = gated
        data_summary["golden"] = {"path": str(cfg.eval.golden), "examples": len(golden)}
    result.metrics.update(tuned)
    result.metrics["trained_model"] = {"kind": trained.kind, "remote_id": trained.remote_id}
    write_json(run_dir / "metrics.json", {"test": tuned, "baseline": result.baseline_metrics,
                                          "train": trained.info, "data": data_summary})
    # ------------------------------------------------------------------ gate
    ui.stage(con, "5/6 gate" + (" (golden set)" if golden else ""))
    lower = {n for n, m in metrics.items() if not m.higher_is_better}
    result.gate = apply_gate(dict(cfg.gate), gated["values"], lower)
    result.gate["on"] = "golden" if golden else "test"
    for name, chk in result.gate["checks"].items():
        con.print(gate_line(name, chk))
    if not cfg.gate:
        con.print("no thresholds configured (gate passes)")
    job.trained = trained
    return job, data_summary, predictions


def _evaluate(con: Any, cfg: DictConfig, predictor: Any, examples: list[Example], task: TaskInfo,
              metrics: dict[str, Metric], run_dir: Path, prefix: str, registry: Registry,
              baseline: list[Prediction] | None = None) -> tuple[dict[str, Any], list[Prediction]]:
    return evaluate(predictor, examples, task, metrics, mode=str(cfg.eval.mode),
                    max_new_tokens=int(cfg.eval.max_new_tokens), run_dir=run_dir, prefix=prefix,
                    registry=registry, baseline=baseline,
                    progress=lambda label, total: ui.progress_bar(con, label, total),
                    **decoding(cfg.eval, task, predictor))


def _load_golden(cfg: DictConfig, registry: Registry, pm: Any, manifest: dict[str, Any], con: Any) -> list[Example]:
    """The golden set: ``eval.golden`` read with the run's data format (``data=auto``: detected)."""
    spec = OmegaConf.merge(cfg.data, {"path": str(cfg.eval.golden)})
    loaded, _ = load_data(spec, registry, pm, "eval.golden")  # type: ignore[arg-type]
    manifest.setdefault("inputs", {}).update(file_hashes(loaded.files))
    if loaded.rejected:
        raise DataError(f"eval.golden: {len(loaded.rejected)} rows of {cfg.eval.golden} were rejected (first: "
                        f"{loaded.rejected[0].source}: {loaded.rejected[0].reason}); a golden set must be clean.")
    if not loaded.examples:
        raise DataError(f"eval.golden: {cfg.eval.golden} has no examples.")
    golden = loaded.examples[: cfg.eval.limit] if cfg.eval.limit else loaded.examples
    con.print(f"golden set: {len(golden)} examples from {cfg.eval.golden}")
    return golden


def _export(cfg: DictConfig, run_dir: Path, registry: Registry, con: Any, job: TrainJob, result: RunResult,
            resolved: dict[str, Any], data_summary: dict[str, Any], predictions: list[Prediction],
            manifest: dict[str, Any]) -> None:
    ui.stage(con, "6/6 export")
    ctx = ExportContext(run_dir=run_dir, trained=job.trained, config=resolved,
                        metrics=result.metrics, baseline_metrics=result.baseline_metrics, gate=result.gate,
                        data=data_summary, predictions=predictions, manifest=manifest)
    run_exporters(ctx, cfg.exporters, registry, con, result.exports)


def _summary(con: Any, cfg: DictConfig, result: RunResult) -> None:
    tuned = result.metrics.get("values", {})
    base = (result.baseline_metrics or {}).get("values") if result.baseline_metrics else None
    con.print()
    golden = result.metrics.get("golden")
    separate = golden is not None and golden.get("values") is not tuned  # golden besides a test split
    title = "golden-set" if golden is not None and not separate else "test"
    con.print(ui.metrics_table(f"{cfg.task.name}: {title} metrics", tuned, base, None if separate else result.gate))
    if separate:
        base_golden = (result.baseline_metrics or {}).get("golden", {}).get("values")
        con.print(ui.metrics_table(f"{cfg.task.name}: golden-set metrics", golden["values"], base_golden,
                                   result.gate))
    for name, details in result.metrics.get("details", {}).items():
        per_class = details.get("per_class") if isinstance(details, dict) else None
        if per_class and all("f1" in v for v in per_class.values()):
            con.print(f"per-class F1 ({name}): " + ", ".join(f"{k} {v['f1']:.2f}" for k, v in per_class.items()))
    train = result.metrics.get("train", {})
    if train:
        asked = train.get("epochs_asked")
        epochs = f"{train.get('epochs_run')} of {asked}" if asked else f"{train.get('epochs_run')}"
        con.print(f"training: {epochs} epochs, {train.get('steps')} steps, "
                  f"{train.get('train_seconds')} s, {train.get('tokens_per_second')} tokens/s")
        stop = train.get("early_stopping") or {}
        if stop.get("stopped"):
            con.print(f"[yellow]stopped early[/] after epoch {stop['stopped_epoch']}: {stop['reason']}; "
                      f"the weights of epoch {train.get('best_epoch')} were evaluated and exported")
    data = result.metrics.get("data") or {}
    if data.get("rejected"):
        kinds = ", ".join(f"{k} {v}" for k, v in data["rejected_by_kind"].items())
        con.print(f"[yellow]{data['rejected']} input rows rejected[/] ({kinds}): {result.run_dir / 'rejected.jsonl'}")
    colour = {"succeeded": "green", "gate_failed": "red"}.get(result.status, "red")
    con.print(f"[bold {colour}]{result.status.upper()}[/] — outputs in {result.run_dir}")

