"""Evaluate a model without training (``ftframe eval``): a saved run's tuned model or a base model.

The same stages as a run's evaluation — predict, score with every configured metric, gate — written
into an output folder: ``config.yaml``, ``predictions.jsonl``, ``metrics.json`` and ``manifest.json``
(whose ``status`` is ``succeeded``, ``gate_failed`` or ``failed``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ftframe import console as ui
from ftframe.api import Example, Metric, Prediction, Predictor, TaskInfo
from ftframe.engine.evaluate import decoding, evaluate, task_info  # noqa: F401 - task_info: the commands' import
from ftframe.engine.run import apply_gate, gate_line
from ftframe.io import write_json, write_text
from ftframe.manifest import file_hashes, new_manifest, now


@dataclass
class EvalResult:
    status: str
    """``succeeded``, ``gate_failed`` or ``failed``."""
    out_dir: Path
    scores: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


def evaluate_model(cfg: DictConfig, predictor: Predictor, examples: list[Example], out_dir: Path, *,
                   registry: Any, task: TaskInfo, source: dict[str, Any], inputs: list[Path] = (),  # type: ignore[assignment]
                   baseline: list[Prediction] | None = None) -> EvalResult:
    """Predict ``examples``, score them with ``cfg.metrics``, apply ``cfg.gate``; write into ``out_dir``."""
    con = ui.get_console()
    out_dir.mkdir(parents=True, exist_ok=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    write_text(out_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    manifest = new_manifest(resolved, int(cfg.seed))  # type: ignore[arg-type]
    manifest.update(kind="eval", evaluated=source, inputs=file_hashes(list(inputs)))
    write_json(out_dir / "manifest.json", manifest)
    result = EvalResult(status="failed", out_dir=out_dir)
    started = time.perf_counter()
    try:
        metrics: dict[str, Metric] = {name: registry.create("metric", name, opts)  # type: ignore[misc]
                                      for name, opts in cfg.metrics.items()}
        ui.stage(con, f"evaluate {predictor.name} on {len(examples)} examples")
        scores, _ = evaluate(predictor, examples, task, metrics, mode=str(cfg.eval.mode),
                             max_new_tokens=int(cfg.eval.max_new_tokens), run_dir=out_dir, registry=registry,
                             baseline=baseline, progress=lambda label, total: ui.progress_bar(con, label, total),
                             **decoding(cfg.eval, task, predictor))
        result.scores = scores
        lower = {n for n, m in metrics.items() if not m.higher_is_better}
        result.gate = apply_gate(dict(cfg.gate), scores["values"], lower)
        write_json(out_dir / "metrics.json", {"test": scores, "data": {**source, "examples": len(examples),
                                                                       "labels": task.labels}})
        result.status = "succeeded" if result.gate["passed"] else "gate_failed"
    finally:
        manifest.update(status=result.status, finished=now(), wall_seconds=round(time.perf_counter() - started, 2),
                        metrics=result.scores, gate=result.gate)
        write_json(out_dir / "manifest.json", manifest)
    con.print(ui.metrics_table(f"{task.name}: {predictor.name}", scores["values"], None, result.gate))
    for name, chk in result.gate["checks"].items():
        con.print(gate_line(name, chk))
    colour = "green" if result.ok else "red"
    con.print(f"[bold {colour}]{result.status.upper()}[/] — outputs in {out_dir}")
    return result
