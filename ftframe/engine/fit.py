"""``fit_local``: train a model on the Lightning engine (the entry point local backends call).

Checkpoints go to ``<run dir>/checkpoints``: ``last.ckpt`` every ``trainer.checkpoint_every_n_steps``
optimizer steps, at every validation and on Ctrl-C, and ``best.ckpt`` for the selected epoch. They hold
only the trained parameters (an adapter is megabytes), the optimizer, scheduler and loop state. A run
started again in the same run dir resumes from ``last.ckpt`` (``trainer.resume``).
"""

from __future__ import annotations

import copy
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint

from ftframe import console as ui
from ftframe.engine.chat import pad_id
from ftframe.engine.checkpoint_io import StreamingCheckpointIO
from ftframe.engine.data import ChatDataModule
from ftframe.engine.hparams import TrainHyperparams
from ftframe.engine.memory import preflight
from ftframe.engine.module import SELECT_KEY, CausalLMModule
from ftframe.engine.packing import KERNELS, packed_collate, packing_problem, register_kernels
from ftframe.engine.predict import switch_attention
from ftframe.engine.ranks import is_global_zero

LAST = "last.ckpt"


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
    """Tokens (prompt and reply, no padding) this process passed through training in this session;
    tokens/s = this / train_seconds."""
    history: list[dict[str, float]]
    """Validation values per epoch."""
    truncated: int = 0
    """Training examples cut to ``max_length``."""
    resumed_from: str | None = None
    """The checkpoint this session continued from."""
    world_size: int = 1
    ranks: list[dict[str, int]] = field(default_factory=list)
    """Per rank ``{"rank", "batches", "tokens"}`` trained in this session."""
    memory: dict[str, Any] | None = None
    """The memory preflight's estimate (bytes)."""
    is_global_zero: bool = True
    """False in the other processes of a distributed run (they evaluate and write nothing)."""
    packed_batches: int = 0
    """Training batches of this process that were packed (``backend.packing``)."""
    sharded_layers: int | None = None
    """Under ``trainer.strategy=fsdp``: the modules sharded with ``fully_shard`` (decoder layers + the root)."""
    computed_tokens: int = 0
    """Token rows this process's training batches ran through the model (padding included, a packed
    batch's shared prefix once): against ``trained_tokens``, what padding and packing did."""
    epochs_asked: int | None = None
    """``epochs`` as configured; ``epochs_run`` is fewer when early stopping or ``max_steps`` ended sooner."""
    best_epoch: int | None = None
    """The selected epoch (0-based, as in ``history``): its weights are the ones loaded back."""
    early_stopping: dict[str, Any] | None = None
    """``{"patience", "monitor", "stopped", "stopped_epoch", "reason"}`` (:func:`early_stopping_info`);
    ``None`` when early stopping is off or nothing was validated."""
    peak_gpu_memory: int | None = None
    """``torch.cuda.max_memory_allocated()`` over training (bytes, this process's GPU) when it trained on
    CUDA; ``None`` on the CPU."""

    def info(self) -> dict[str, Any]:
        """The training facts a backend reports (``metrics.json`` → ``train``)."""
        tokens = sum(r["tokens"] for r in self.ranks) if self.ranks else self.trained_tokens
        return {"epochs_run": self.epochs_run, "steps": self.steps, "train_seconds": round(self.train_seconds, 2),
                "trained_tokens": tokens, "truncated": self.truncated,
                "tokens_per_second": round(tokens / max(self.train_seconds, 1e-9), 1),
                "best_checkpoint": self.best_checkpoint, "best_score": self.best_score, "monitor": self.monitor,
                "resumed_from": self.resumed_from, "world_size": self.world_size, "ranks": self.ranks,
                "memory": self.memory, "packed_batches": self.packed_batches, "computed_tokens": self.computed_tokens,
                "epochs_asked": self.epochs_asked, "best_epoch": self.best_epoch, "early_stopping": self.early_stopping,
                "sharded_layers": self.sharded_layers, "peak_gpu_memory": self.peak_gpu_memory, "history": self.history}


class InterruptCheckpoint(Callback):
    """On Ctrl-C, save ``last.ckpt`` so the run can resume. (Lightning's ``OnExceptionCheckpoint`` saves on
    every exception, also mid-way through a failing step, and deletes its file when a run ends normally.)"""

    def __init__(self, path: Path):
        self.path = path

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            trainer.save_checkpoint(self.path)


def resume_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a run in ``run_dir`` continues from, if an earlier attempt left one."""
    path = Path(run_dir) / "checkpoints" / LAST
    return path if path.is_file() else None


def _callbacks(job: Any, hp: TrainHyperparams, has_val: bool) -> tuple[list[Any], ModelCheckpoint]:
    tcfg = job.trainer_config
    ckpt_dir = job.run_dir / "checkpoints"
    # enable_version_counter=False: both callbacks write last.ckpt, and a resumed run overwrites its files.
    epoch_ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=SELECT_KEY if has_val else None,
                                 mode="min", save_top_k=1 if has_val else 0, save_last=True,
                                 auto_insert_metric_name=False, enable_version_counter=False)
    callbacks: list[Any] = [epoch_ckpt, InterruptCheckpoint(ckpt_dir / LAST)]
    if job.config.get("logger") is not None:  # Lightning refuses a LearningRateMonitor without a logger
        callbacks.insert(0, LearningRateMonitor(logging_interval="step"))
    every = tcfg.get("checkpoint_every_n_steps")
    if every:
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, save_top_k=0, save_last=True, every_n_train_steps=int(every),
                                         enable_version_counter=False))
    if has_val and hp.early_stopping_patience is not None:
        callbacks.append(EarlyStopping(monitor=SELECT_KEY, mode="min", patience=hp.early_stopping_patience,
                                       strict=False))  # max_steps may end training before any validation
    return callbacks, epoch_ckpt


def early_stopping_info(trainer: L.Trainer, monitor: str, best: dict[str, float] | None) -> dict[str, Any] | None:
    """What Lightning's ``EarlyStopping`` did, in the task's terms: whether it ended the run, at which
    epoch (0-based), and why; ``best`` is the selected epoch's validation values. ``None`` when the run had
    no early stopping or no validated epoch."""
    callback = trainer.early_stopping_callback
    if callback is None or best is None:
        return None
    # stopped_epoch stays 0 unless the callback stopped the run, which cannot happen at epoch 0 (the first
    # validation is always an improvement)
    stopped = callback.stopped_epoch > 0
    info: dict[str, Any] = {"patience": callback.patience, "monitor": monitor, "stopped": stopped,
                            "stopped_epoch": int(callback.stopped_epoch) if stopped else None, "reason": None}
    if stopped:
        value = best.get(monitor)
        shown = f" ({monitor} {value:.4g})" if isinstance(value, float) else ""
        ties = " (ties broken by the lower val/loss)" if monitor != "val/loss" else ""
        info["reason"] = (f"{monitor}{ties} did not improve for {callback.patience} epoch(s) after epoch "
                          f"{int(best['epoch'])}{shown}")
    return info


def sharding_strategy(tcfg: Any) -> Any:
    """``trainer.strategy=fsdp``: torch's FSDP2 (``fully_shard``, :meth:`CausalLMModule.configure_model`)
    through Lightning's ``ModelParallelStrategy``, every process one data-parallel shard, checkpoints as
    one full file (what resume and best-epoch selection read). Unlike Lightning's FSDP1 strategy it also
    runs on the CPU (gloo)."""
    from lightning.pytorch.strategies import ModelParallelStrategy

    devices = tcfg.devices
    if not isinstance(devices, (int, str)):  # a list of device indices
        count = len(devices)
    elif str(devices) in ("auto", "-1"):
        gpu = str(tcfg.accelerator) in ("gpu", "cuda") or (str(tcfg.accelerator) == "auto" and torch.cuda.is_available())
        count = torch.cuda.device_count() if gpu else 1
    else:
        count = int(devices)
    return ModelParallelStrategy(data_parallel_size=count * int(tcfg.num_nodes), tensor_parallel_size=1,
                                 save_distributed_checkpoint=False)


def gather_trained(sharded: Any, whole: Any) -> None:
    """Copy the trained parameters of the FSDP-sharded ``sharded`` into ``whole`` on rank 0 (every rank
    must call it: the shards are gathered)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(sharded, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    names = {n for n, p in whole.named_parameters() if p.requires_grad}
    if full:  # rank 0; the other ranks get nothing and evaluate nothing
        whole.load_state_dict({k: v for k, v in full.items() if k in names}, strict=False)


def fit_local(job: Any, model: Any, tokenizer: Any, hp: TrainHyperparams, *,
              module_cls: type[CausalLMModule] = CausalLMModule, callbacks: Sequence[Any] = (),
              memory_hints: Sequence[str] = ()) -> FitResult:
    """Train ``model`` (whose trainable parameters are already chosen) on ``job``'s splits.

    ``module_cls`` is the objective (supervised by default; a subclass brings its own data encoding and
    loss); ``callbacks`` are extra Lightning callbacks of the backend. Validation each epoch reports
    ``val/loss`` and, for objectives with ``task_validation``, the task's primary metric; early stopping
    and the best checkpoint follow the task metric (or the loss). The best weights are loaded back into
    ``model`` before returning.
    """
    seed = hp.seed if hp.seed is not None else job.seed
    torch.manual_seed(seed)
    pad = pad_id(tokenizer)
    train = module_cls.encode(tokenizer, job.train, hp.max_length)
    val = module_cls.encode(tokenizer, job.val, hp.max_length) if job.val else None
    tcfg = job.trainer_config
    sharded = str(tcfg.strategy) == "fsdp"
    scorer = job.val_scorer(tokenizer, module_cls.val_predictor) if val is not None and module_cls.task_validation else None
    if sharded and scorer is not None:
        # rank 0 alone scores the validation split, and a sharded model answers only with every rank
        scorer = None
        if is_global_zero():
            ui.get_console().print("[dim]fsdp: epochs are selected on val/loss (the task metrics are computed "
                                   "after training)[/]")
    monitor, mode = job.val_monitor if scorer is not None else ("val/loss", "min")
    # Under FSDP a copy trains sharded and `model` stays whole for rank 0's evaluation and export after
    # training (the trained weights are gathered into it).
    trained = copy.deepcopy(model) if sharded else model
    module = module_cls(trained, hp, val_scorer=scorer, monitor=monitor, higher_is_better=(mode == "max"))
    if hp.gradient_checkpointing:
        # Non-reentrant checkpointing needs no input that requires grad (a frozen embedding is fine).
        trained.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trained.train()  # loaders hand out eval-mode models; dropout must be active while training

    extra, epoch_ckpt = _callbacks(job, hp, val is not None)
    trainer = L.Trainer(
        accelerator=tcfg.accelerator, devices=tcfg.devices, num_nodes=tcfg.num_nodes,
        strategy=sharding_strategy(tcfg) if sharded else tcfg.strategy,
        precision=hp.lightning_precision(), max_epochs=hp.epochs, max_steps=hp.max_steps,
        accumulate_grad_batches=hp.grad_accum, gradient_clip_val=hp.grad_clip or None,
        log_every_n_steps=tcfg.log_every_n_steps, enable_progress_bar=tcfg.enable_progress_bar,
        deterministic=tcfg.deterministic, logger=job.lightning_logger(), callbacks=[*extra, *callbacks,
                                                                                    *job.extra_callbacks()],
        default_root_dir=str(job.run_dir), num_sanity_val_steps=0, enable_model_summary=False,
        limit_val_batches=1.0 if val is not None else 0,
        plugins=[StreamingCheckpointIO()],  # no in-memory copy of each checkpoint (ftframe.engine.checkpoint_io)
    )
    # Length grouping is our own batch sampler; distributed runs use Lightning's DistributedSampler instead.
    group = hp.group_by_length and trainer.world_size == 1
    packing = hp.packing and module_cls.packable
    if packing and (problem := packing_problem(model, hp.max_length)):
        packing = False
        if trainer.is_global_zero:
            ui.get_console().print(f"[dim]training on padded batches, not packed ones: {problem}[/]")
    dm = ChatDataModule(train, pad, hp.batch_size, seed, group_by_length=group, val=val,
                        collate_fn=partial(packed_collate, module_cls.collate) if packing else module_cls.collate)
    device = "cuda" if str(tcfg.accelerator) in ("gpu", "cuda") or (
        str(tcfg.accelerator) == "auto" and torch.cuda.is_available()) else "cpu"
    seq_len = min(hp.max_length, max(train.lengths, default=1))
    estimate = preflight(model, mode=hp.memory_check, hints=memory_hints, batch_size=hp.batch_size, seq_len=seq_len,
                         gradient_checkpointing=hp.gradient_checkpointing, device=device,
                         available_gb=hp.memory_available_gb, fast_head=module.fast_head,
                         sequences_per_item=getattr(module_cls, "sequences_per_item", 1),
                         warn=lambda m: ui.get_console().print(f"[yellow]{m}[/]"))

    kernel = hp.training_attention(device, seq_len)
    if packing:
        register_kernels()
        kernel = KERNELS[kernel]
    attention = switch_attention(trained, kernel)

    resume = resume_checkpoint(job.run_dir) if tcfg.get("resume", True) else None
    if resume is not None and trainer.is_global_zero:
        ui.get_console().print(f"resuming from {resume}")
    previous = signal.getsignal(signal.SIGINT)
    cuda = device == "cuda" and torch.cuda.is_available()
    if cuda and torch.cuda.is_initialized():  # the preflight's free-memory query initialised it
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume else None)
    except SystemExit:
        # Lightning turns Ctrl-C into a graceful shutdown (our callback saved last.ckpt) and sys.exit(1).
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)  # Lightning ignores further Ctrl-C after the first
        switch_attention(trained, attention)  # evaluation keeps the model's own kernel
    seconds = time.perf_counter() - start
    peak_gpu = int(torch.cuda.max_memory_allocated()) if cuda and torch.cuda.is_initialized() else None

    best_path, best_score, best = None, None, None
    if val is not None and epoch_ckpt.best_model_path:
        best_path = epoch_ckpt.best_model_path
        best = module.best_epoch()
        best_score = best.get(monitor) if best else None
    if sharded:
        gather_trained(trained, model)
    if best_path is not None:
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        if sharded:  # into the whole model (keys without the LightningModule's "model." prefix)
            missing = model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()}, strict=False)
        else:
            missing = module.load_state_dict(state, strict=False)
        if missing.unexpected_keys:
            raise RuntimeError(f"best checkpoint has unexpected keys: {missing.unexpected_keys[:5]}")
    model.eval()
    return FitResult(best_path, best_score, monitor, trainer.current_epoch, trainer.global_step, seconds,
                     module.trained_tokens, module.history, sum(x.truncated for x in train.items),
                     resumed_from=str(resume) if resume else None, world_size=trainer.world_size,
                     ranks=module.rank_stats, memory=estimate.as_dict() if estimate else None,
                     is_global_zero=trainer.is_global_zero, packed_batches=module.packed_batches,
                     computed_tokens=module.computed_tokens, epochs_asked=hp.epochs,
                     best_epoch=int(best["epoch"]) if best else None,
                     early_stopping=early_stopping_info(trainer, monitor, best),
                     sharded_layers=getattr(module, "sharded_layers", None), peak_gpu_memory=peak_gpu)
