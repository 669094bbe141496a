"""``TrainJob``: what a backend gets — the data splits, the model source, and the engine's services."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
from omegaconf import DictConfig, OmegaConf

from ftframe.api import Example, LoadedModel, Metric, ModelSource, TaskInfo, TrainedModel
from ftframe.config.schema import EvalConfig, TrainerConfig
from ftframe.engine.evaluate import decoding, predict, score_predictions


@dataclass
class TrainJob:
    config: DictConfig
    model_source: ModelSource
    train: list[Example]
    val: list[Example]
    task: TaskInfo
    metrics: dict[str, Metric]
    run_dir: Path
    seed: int
    trainer_config: TrainerConfig
    eval_config: EvalConfig
    pm: pluggy.PluginManager
    trained: TrainedModel | None = None
    """Set by the run once the backend has trained."""
    _model: LoadedModel | None = field(default=None, repr=False)
    _dtype: Any = field(default=None, repr=False)

    def load_model(self, dtype: Any = None) -> LoadedModel:
        """The model and tokenizer, loaded once per job (baseline and training share one copy)."""
        if self._model is None or dtype != self._dtype:
            self._model, self._dtype = None, None
            self._model, self._dtype = self.model_source.load(dtype=dtype), dtype
        return self._model

    @property
    def loaded_model(self) -> LoadedModel | None:
        """The model this job has loaded so far, if any (provider backends load none)."""
        return self._model

    def release_model(self) -> None:
        self._model = None

    @property
    def primary_metric(self) -> str:
        return str(self.config.task.primary_metric)

    @property
    def val_monitor(self) -> tuple[str, str]:
        metric = self.metrics.get(self.primary_metric)
        mode = "max" if metric is None or metric.higher_is_better else "min"
        return f"val/{self.primary_metric}", mode

    def val_scorer(self, tokenizer: Any, make_predictor: Any = None) -> Any:
        """A callable scoring the validation split with the task metrics, for in-loop validation.

        ``make_predictor(model, tokenizer, batch_size, precision)`` builds the predictor (default:
        LocalPredictor)."""
        from ftframe.engine.predict import LocalPredictor

        make = make_predictor or LocalPredictor
        mode = self.eval_config.val_mode or self.eval_config.mode
        mode = "generate" if mode == "both" or not self.task.labels else mode

        def score(model: Any) -> dict[str, float]:
            predictor = make(model, tokenizer, batch_size=self.eval_config.batch_size,
                             precision=self.eval_config.precision)
            preds = predict(predictor, self.val, self.task, mode=mode, max_new_tokens=self.eval_config.max_new_tokens,
                            **decoding(self.eval_config, self.task, predictor))
            in_loop = {name: m for name, m in self.metrics.items() if m.in_loop}
            values = score_predictions(preds, in_loop, self.task)["values"]
            return {f"val/{k}": float(v) for k, v in values.items()}

        return score

    def extra_callbacks(self) -> list[Any]:
        """The plugins' Lightning callbacks, and with a logger the one that gives it the run config."""
        from ftframe.plugins import call_hook

        out: list[Any] = []
        if self.config.get("logger") is not None:
            from ftframe.engine.trackers import TrackerRun

            out.append(TrackerRun(OmegaConf.to_container(self.config, resolve=True)))
        for group in call_hook(self.pm, "ftframe_lightning_callbacks", config=self.config):
            out.extend(group)
        return out

    def lightning_logger(self) -> Any:
        """The configured Lightning logger (``logger`` group), writing below the run dir."""
        from hydra.utils import instantiate

        if self.config.get("logger") is None:
            return False
        spec = OmegaConf.to_container(self.config.logger, resolve=True)
        return instantiate(spec, save_dir=str(self.run_dir))
