"""The LightningModule: causal-LM loss on assistant tokens only, task metrics on validation."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from ftframe.engine.hparams import TrainHyperparams

ValScorer = Callable[[Any], dict[str, float]]
"""Given the model under training, score the validation split: ``{"val/<metric>": value, ...}``."""

SELECT_KEY = "val/select"
"""What early stopping and checkpointing monitor (minimised): a rank that falls by one each time an epoch
beats the best so far on (task metric, then validation loss), and is worse than the best otherwise."""


def supports_fast_head(model: Any) -> bool:
    """True when logits are exactly ``lm_head(decoder(x))`` (no soft-capping or scaling)."""
    cfg = getattr(model, "config", None)
    odd = any(getattr(cfg, k, None) for k in ("final_logit_softcapping", "logit_scale", "logits_scaling"))
    return (not odd and callable(getattr(model, "get_decoder", None))
            and callable(getattr(model, "get_output_embeddings", None))
            and model.get_output_embeddings() is not None)


def causal_lm_loss(model: Any, batch: dict[str, torch.Tensor], *, fast_head: bool,
                   label_smoothing: float = 0.0) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over trained positions, and how many there were.

    With ``fast_head`` the vocabulary projection runs only at trained positions (the head of a small
    model with a 49k vocabulary costs more than its decoder at every other position).
    """
    labels = batch["labels"]
    targets = labels[:, 1:]
    sel = targets != -100
    n = int(sel.sum())
    if fast_head:
        hidden = model.get_decoder()(input_ids=batch["input_ids"],
                                     attention_mask=batch["attention_mask"]).last_hidden_state
        logits = model.get_output_embeddings()(hidden[:, :-1][sel])
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1][sel]
    loss = F.cross_entropy(logits.float(), targets[sel], label_smoothing=label_smoothing)
    return loss, n


class CausalLMModule(L.LightningModule):
    def __init__(self, model: Any, hparams: TrainHyperparams, val_scorer: ValScorer | None = None,
                 monitor: str = "val/loss", higher_is_better: bool = False):
        super().__init__()
        self.model, self.hp, self.val_scorer = model, hparams, val_scorer
        self.monitor, self.higher_is_better = monitor, higher_is_better
        self.fast_head = hparams.fast_head and supports_fast_head(model)
        self.strict_loading = False  # checkpoints hold only the trained parameters
        self.trained_tokens = 0
        self._val_loss_sum, self._val_tokens = 0.0, 0
        self.history: list[dict[str, float]] = []
        self._best_key: tuple[float, float] | None = None
        self._best_rank = 0
        """Validation values per epoch (with ``epoch`` and the selection key)."""

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, n = causal_lm_loss(self.model, batch, fast_head=self.fast_head,
                                 label_smoothing=self.hp.label_smoothing)
        self.trained_tokens += int(batch["attention_mask"].sum())
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, n = causal_lm_loss(self.model, batch, fast_head=self.fast_head)
        self._val_loss_sum += float(loss) * n
        self._val_tokens += n

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        loss = self._val_loss_sum / max(self._val_tokens, 1)  # token-weighted over the whole split
        self._val_loss_sum, self._val_tokens = 0.0, 0
        values = dict(self.val_scorer(self.model)) if self.val_scorer is not None else {}
        values["val/loss"] = loss
        for key, value in values.items():
            self.log(key, value, prog_bar=True)
        # A small metric on a small validation split ties often (e.g. 1.0 from epoch 0 on); among equal
        # scores the lower validation loss wins, so a tie never keeps an earlier, less trained epoch.
        # Compared as a tuple, exactly; Lightning's callbacks then monitor an integer rank.
        metric = values.get(self.monitor, loss)
        key = ((-metric if self.higher_is_better else metric), loss)
        if self._best_key is None or key < self._best_key:
            self._best_key, self._best_rank = key, self._best_rank - 1
            select = float(self._best_rank)
        else:
            select = float(self._best_rank + 1)
        self.log(SELECT_KEY, select)
        self.history.append({"epoch": self.current_epoch, **values, SELECT_KEY: select})

    def best_epoch(self) -> dict[str, float] | None:
        """The validation values of the epoch the selection key prefers (the first of equals)."""
        return min(self.history, key=lambda h: h[SELECT_KEY]) if self.history else None

    def configure_optimizers(self) -> Any:
        from transformers import get_scheduler

        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": self.hp.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=self.hp.lr)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = self.hp.warmup_steps or math.ceil(self.hp.warmup_ratio * total)
        name = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}[self.hp.scheduler]
        sched = get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainable = {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}
