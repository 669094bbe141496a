"""What every experiment tracker (the ``logger`` group) gets from a run beyond its training curves."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import Callback


class TrackerRun(Callback):
    """Logs the run's resolved config as the tracker's hyperparameters when training starts, and ends a
    W&B run when training ends.

    Lightning logs only a LightningModule's saved hyperparameters (ftframe's modules save none), so without
    this a tracker would hold the curves but not the config that produced them. Lightning's ``WandbLogger``
    never calls ``wandb.finish()``: the run would stay open, and the next cell of an in-process sweep would
    log into it. Loggers log from global rank 0 only (their ``log_hyperparams`` is rank-zero-only).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams(self.config)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit":
            _finish_wandb(trainer, exit_code=0)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        _finish_wandb(trainer, exit_code=1)


def _finish_wandb(trainer: Any, exit_code: int) -> None:
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        run = getattr(logger, "_experiment", None)  # WandbLogger's wandb run, once one was started
        if type(logger).__name__ == "WandbLogger" and run is not None:
            run.finish(exit_code=exit_code)
