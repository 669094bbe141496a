"""``fit_local``: train a model on the Lightning engine (the entry point local backends call)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from torch.utils.data import DataLoader

from ftframe.engine.data import ChatDataModule, collate, encode_examples
from ftframe.engine.hparams import TrainHyperparams
from ftframe.engine.module import SELECT_KEY, CausalLMModule


@dataclass
class FitResult:
    best_checkpoint: str | None
    best_score: float | None
    """The monitored validation value (e.g. ``val/macro_f1``) of the selected epoch."""
    monitor: str
    epochs_run: int
    steps: int
    train_seconds: float
    trained_tokens: int
    """Tokens (prompt and reply, no padding) passed through training; tokens/s = this / train_seconds."""
    history: list[dict[str, float]]
    """Validation values per epoch."""
    truncated: int = 0
    """Training examples cut to ``max_length``."""


class _ValData(L.LightningDataModule):
    def __init__(self, dm: ChatDataModule, val: Any):
        super().__init__()
        self.dm, self.val = dm, val

    def train_dataloader(self) -> DataLoader:
        return self.dm.train_dataloader()

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=self.dm.batch_size,
                          collate_fn=lambda items: collate(items, self.dm.pad_id))


def fit_local(job: Any, model: Any, tokenizer: Any, hp: TrainHyperparams) -> FitResult:
    """Train ``model`` (whose trainable parameters are already chosen) on ``job``'s splits.

    Validation each epoch reports ``val/loss`` and the task's primary metric; early stopping and the
    best checkpoint follow the task metric (or the loss when the task has none). The best weights are
    loaded back into ``model`` before returning.
    """
    torch.manual_seed(job.seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train = encode_examples(tokenizer, job.train, hp.max_length)
    val = encode_examples(tokenizer, job.val, hp.max_length) if job.val else None
    dm = ChatDataModule(train, pad, hp.batch_size, job.seed, group_by_length=hp.group_by_length)
    scorer = job.val_scorer(tokenizer) if val is not None else None
    monitor, mode = job.val_monitor if scorer is not None else ("val/loss", "min")
    module = CausalLMModule(model, hp, val_scorer=scorer, monitor=monitor, higher_is_better=(mode == "max"))
    model.train()  # loaders hand out eval-mode models; dropout must be active while training

    ckpt_dir = job.run_dir / "checkpoints"
    callbacks: list[Any] = [LearningRateMonitor(logging_interval="step")]
    checkpoint = None
    if val is not None:
        checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=SELECT_KEY, mode="min",
                                     save_top_k=1, save_last=True, auto_insert_metric_name=False)
        callbacks.append(checkpoint)
        if hp.early_stopping_patience is not None:
            callbacks.append(EarlyStopping(monitor=SELECT_KEY, mode="min", patience=hp.early_stopping_patience))
    callbacks += job.extra_callbacks()

    tcfg = job.trainer_config
    trainer = L.Trainer(
        accelerator=tcfg.accelerator, devices=tcfg.devices, num_nodes=tcfg.num_nodes, strategy=tcfg.strategy,
        precision=hp.lightning_precision(), max_epochs=hp.epochs, max_steps=hp.max_steps,
        accumulate_grad_batches=hp.grad_accum, gradient_clip_val=hp.grad_clip or None,
        log_every_n_steps=tcfg.log_every_n_steps, enable_progress_bar=tcfg.enable_progress_bar,
        deterministic=tcfg.deterministic, logger=job.lightning_logger(), callbacks=callbacks,
        default_root_dir=str(job.run_dir), num_sanity_val_steps=0, enable_model_summary=False,
        limit_val_batches=1.0 if val is not None else 0,
    )
    datamodule = _ValData(dm, val) if val is not None else dm
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - start

    best_path, best_score = None, None
    if checkpoint is not None and checkpoint.best_model_path:
        best_path = checkpoint.best_model_path
        best = module.best_epoch()
        best_score = best.get(monitor) if best else None
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        missing = module.load_state_dict(state, strict=False)
        if missing.unexpected_keys:
            raise RuntimeError(f"best checkpoint has unexpected keys: {missing.unexpected_keys[:5]}")
    model.eval()
    return FitResult(best_path, best_score, monitor, trainer.current_epoch, trainer.global_step, seconds,
                     module.trained_tokens, module.history, sum(x.truncated for x in train.items))
