"""The LightningModule: causal-LM loss on assistant tokens only, task metrics on validation.

:class:`CausalLMModule` is the supervised objective and the base of other objectives (e.g. preference
training): a subclass overrides ``encode``/``collate`` (what a training item is) and ``compute_loss``;
logging, distributed reduction of validation values, best-epoch selection and checkpoint contents stay
here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F

from ftframe.api import Example
from ftframe.engine.data import EncodedDataset, collate, encode_examples
from ftframe.engine.hparams import TrainHyperparams
from ftframe.engine.packing import KERNELS, for_kernel, register_kernels, unpacked_attention

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


def trained_logits(model: Any, batch: dict[str, Any], *, fast_head: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at the positions whose next token is trained (``[n, vocab]``) and those next tokens.

    With ``fast_head`` the vocabulary projection runs only at trained positions (the head of a small
    model with a 49k vocabulary costs more than its decoder at every other position). ``batch`` is padded
    rows or a packed batch (:func:`ftframe.engine.packing.pack`); both give the same logits, in row order.
    """
    targets = batch["labels"][:, 1:]
    sel = targets != -100
    inputs = model_inputs(model, batch)
    if fast_head:
        hidden = model.get_decoder()(**inputs).last_hidden_state
        logits = model.get_output_embeddings()(hidden[:, :-1][sel])
    else:
        logits = model(**inputs).logits[:, :-1][sel]
    return logits, targets[sel]


def model_inputs(model: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """The model's keyword arguments for a padded or a packed batch."""
    packed = batch.get("packed")
    if packed is None:
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    kernel = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if kernel not in KERNELS.values():
        raise RuntimeError(f"a packed batch needs one of the attention kernels {sorted(KERNELS.values())} "
                           f"(ftframe.engine.packing.register_kernels), the model has {kernel!r}")
    rows = for_kernel(packed, kernel, model.get_input_embeddings().weight.dtype)
    return {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "attention_mask": rows.sees,
            "packed": rows}


def batch_tokens(batch: dict[str, Any]) -> int:
    """Tokens of the rows of ``batch`` (no padding; a shared prefix counts once per row)."""
    return int(batch["tokens"]) if "tokens" in batch else int(batch["attention_mask"].sum())


def causal_lm_loss(model: Any, batch: dict[str, Any], *, fast_head: bool,
                   label_smoothing: float = 0.0) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over trained positions, and how many there were."""
    logits, targets = trained_logits(model, batch, fast_head=fast_head)
    loss = F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
    return loss, int(targets.numel())


def sequence_logprobs(model: Any, batch: dict[str, torch.Tensor], *, fast_head: bool,
                      average: bool = False) -> torch.Tensor:
    """Sum of the log-probabilities of each row's trained tokens (``[batch]``), e.g. a reply given its
    prompt; positions labelled ``-100`` do not count. ``average``: the mean per trained token instead
    (the length-normalised log-probability of IPO, SimPO and ORPO); a row without one gives 0."""
    logits, targets = trained_logits(model, batch, fast_head=fast_head)
    token_logp = torch.log_softmax(logits.float(), dim=-1).gather(1, targets.unsqueeze(1)).squeeze(1)
    trained = batch["labels"][:, 1:] != -100
    row = torch.arange(batch["labels"].shape[0], device=targets.device).unsqueeze(1).expand_as(trained)[trained]
    sums = torch.zeros(batch["labels"].shape[0], device=targets.device, dtype=token_logp.dtype).index_add(0, row, token_logp)
    return sums / trained.sum(1).clamp(min=1).to(sums.dtype) if average else sums


class CausalLMModule(L.LightningModule):
    """Supervised fine-tuning: next-token loss on the trained (assistant) tokens."""

    task_validation: ClassVar[bool] = True
    """Score the validation split with the task metrics each epoch (else: select on ``val/loss``)."""
    packable: ClassVar[bool] = True
    """Batches may be packed (:mod:`ftframe.engine.packing`): the loss needs only the trained tokens in row
    order (:func:`trained_logits` reads packed and padded batches alike). An objective whose loss needs
    each row's own positions (a classification head's last token, a preference pair's per-row sums) sets
    this False; a batch with entries of its own collate stays padded anyway."""

    def __init__(self, model: Any, hparams: TrainHyperparams, val_scorer: ValScorer | None = None,
                 monitor: str = "val/loss", higher_is_better: bool = False):
        super().__init__()
        self.model, self.hp, self.val_scorer = model, hparams, val_scorer
        self.monitor, self.higher_is_better = monitor, higher_is_better
        self.fast_head = hparams.fast_head and supports_fast_head(model)
        self.strict_loading = False  # checkpoints hold only the trained parameters
        self.trained_tokens = 0
        self.trained_batches = 0
        self.packed_batches = 0
        self.computed_tokens = 0
        """Token rows the model computed (padding included; a packed batch's shared prefix once)."""
        self.rank_stats: list[dict[str, int]] = []
        """Per rank ``{"rank", "batches", "tokens"}`` of this session, gathered when training ends."""
        self.checkpoint_names: set[str] = set()
        """Parameters saved in checkpoints besides those trainable now (e.g. layers a schedule unfreezes
        later, so that restoring an earlier best epoch also restores them)."""
        self._val_sums: dict[str, float] = {}
        self._val_weight = 0
        self.history: list[dict[str, float]] = []
        """Validation values per epoch (with ``epoch`` and the selection key)."""
        self._best_key: tuple[float, float] | None = None
        self._best_rank = 0

    # ------------------------------------------------------------------------------ the objective
    @staticmethod
    def encode(tokenizer: Any, examples: Sequence[Example], max_length: int) -> EncodedDataset:
        """Training items for ``examples`` (each with ``truncated`` and the dataset with ``lengths``)."""
        return encode_examples(tokenizer, examples, max_length)

    @staticmethod
    def collate(items: Sequence[Any], pad_id: int) -> dict[str, torch.Tensor]:
        return collate(items, pad_id)

    @classmethod
    def val_predictor(cls, model: Any, tokenizer: Any, batch_size: int, precision: str = "auto") -> Any:
        """The predictor that scores the validation split with the task metrics (an objective whose model
        answers differently, e.g. through a classification head, returns its own)."""
        from ftframe.engine.predict import LocalPredictor

        return LocalPredictor(model, tokenizer, batch_size=batch_size, precision=precision)

    def compute_loss(self, batch: dict[str, Any], *, training: bool) -> tuple[torch.Tensor, int, dict[str, torch.Tensor]]:
        """``(loss, weight, extra values)``: the weight (trained tokens, pairs...) averages over batches."""
        loss, n = causal_lm_loss(self.model, batch, fast_head=self.fast_head,
                                 label_smoothing=self.hp.label_smoothing if training else 0.0)
        return loss, n, {}

    # --------------------------------------------------------------------------------- training
    def setup(self, stage: str) -> None:
        register_kernels()  # in every process: a spawned worker's model may name the packed kernels

    def configure_model(self) -> None:
        """Under ``trainer.strategy=fsdp`` (Lightning's ``ModelParallelStrategy``, which sets ``device_mesh``):
        shard every decoder layer, then the rest of the model, over the data-parallel ranks with torch's
        FSDP2 ``fully_shard``; Lightning calls this once, before the optimizer is made."""
        mesh = self.device_mesh
        if mesh is None or getattr(self, "_sharded", False):
            return
        from torch.distributed.fsdp import fully_shard

        shards = mesh["data_parallel"]
        layers = [m for m in self.model.modules() if type(m).__name__.endswith("DecoderLayer")]
        for layer in layers:
            fully_shard(layer, mesh=shards)
        fully_shard(self.model, mesh=shards)
        self.sharded_layers = len(layers) + 1
        # The fast head calls the decoder on its own, which would skip the root's un-sharding of the
        # embeddings and the head: the sharded model always runs whole.
        self.fast_head = False
        self._sharded = True

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, n, extra = self.compute_loss(batch, training=True)
        self.trained_tokens += batch_tokens(batch)
        self.trained_batches += 1
        self.packed_batches += int("packed" in batch)
        self.computed_tokens += batch["input_ids"].numel()
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        for key, value in extra.items():
            self.log(f"train/{key}", value, on_step=True, on_epoch=True, batch_size=n)
        return loss

    def on_train_end(self) -> None:
        # Every rank's own count, so a distributed run can show each rank trained (a no-op on one process).
        mine = torch.tensor([self.global_rank, self.trained_batches, self.trained_tokens], dtype=torch.long)
        gathered = self.all_gather(mine).reshape(-1, 3).tolist()
        self.rank_stats = [{"rank": int(r), "batches": int(b), "tokens": int(t)} for r, b, t in gathered]

    # ------------------------------------------------------------------------------- validation
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, n, extra = self.compute_loss(batch, training=False)
        for key, value in {"loss": loss, **extra}.items():
            self._val_sums[key] = self._val_sums.get(key, 0.0) + float(value) * n
        self._val_weight += n

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        keys = sorted(self._val_sums)
        # Weighted over the whole split: summed over the ranks' shards (Lightning's reduce; one process: as is).
        sums = torch.tensor([self._val_sums[k] for k in keys] + [float(self._val_weight)], dtype=torch.float64)
        sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        self._val_sums, self._val_weight = {}, 0
        weight = max(float(sums[-1]), 1.0)
        values = {f"val/{k}": float(v) / weight for k, v in zip(keys, sums[:-1].tolist())}
        if self.val_scorer is not None:
            # The task metrics see the whole split on rank 0; the other ranks get the same values.
            scored = None
            if self.trainer.is_global_zero:
                with unpacked_attention(self.model):  # generate and score as after training
                    scored = self.val_scorer(self.model)
            values.update(self.trainer.strategy.broadcast(scored, src=0))
        loss = values.get("val/loss", math.nan)
        for key, value in values.items():
            self.log(key, value, prog_bar=key in ("val/loss", self.monitor))
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

    # -------------------------------------------------------------------------------- optimiser
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

    # ------------------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Only the trained parameters (an adapter checkpoint is megabytes, not the whole base model).
        self.checkpoint_names |= {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in self.checkpoint_names}
        checkpoint["ftframe"] = {"history": self.history, "best_key": self._best_key, "best_rank": self._best_rank}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("ftframe")
        if state:
            self.history = list(state["history"])
            self._best_key = tuple(state["best_key"]) if state["best_key"] is not None else None
            self._best_rank = int(state["best_rank"])
