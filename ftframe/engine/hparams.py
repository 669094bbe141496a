"""Hyperparameters every local backend takes (backend ``Config`` classes inherit from this)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

PRECISIONS = ("auto", "fp32", "bf16-mixed", "bf16-true")
SCHEDULERS = ("cosine", "linear", "constant")
MEMORY_CHECKS = ("error", "warn", "off")
ATTENTIONS = ("auto", "eager", "sdpa")
EAGER_MAX_TOKENS = 256
"""``attention=auto`` trains with eager attention on the CPU up to this sequence length (its ``[batch,
heads, length, length]`` score tensors are kept for the backward pass, so longer rows use ``sdpa``)."""


def hardware_bf16() -> bool:
    """True where bf16 matrix maths runs natively (CUDA with bf16, or a CPU with AMX / AVX512-BF16)."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    avx = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    return bool(amx() or avx())


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``bf16-true`` where the hardware has bf16 maths, else ``fp32``.

    Measured on the 2-core AMX CPU (docs/benchmarks.md): LoRA training with the frozen base in bf16 ran
    1.6x the fp32 throughput and evaluation 3.5x; bf16 autocast gained only ~15%. On a CPU without
    native bf16 the same setting would be emulated and slow, hence the check.
    """
    if precision != "auto":
        return precision
    return "bf16-true" if hardware_bf16() else "fp32"


@dataclass
class TrainHyperparams:
    synonyms: ClassVar[dict[str, str]] = {
        "learning_rate": "lr", "num_train_epochs": "epochs", "num_epochs": "epochs",
        "per_device_train_batch_size": "batch_size", "gradient_accumulation_steps": "grad_accum",
        "max_grad_norm": "grad_clip", "max_seq_length": "max_length", "warmup": "warmup_steps",
        "n_epochs": "epochs",
    }
    """What people write for these options elsewhere (transformers' ``TrainingArguments``, TRL, the provider
    APIs) -> the option: an unknown key close to one is answered "did you mean ..." with the option."""
    portable: ClassVar[dict[str, str]] = {"epochs": "epochs", "batch_size": "batch_size", "lr": "lr",
                                          "max_length": "max_length", "warmup_ratio": "warmup_ratio"}
    """The portable ``train.*`` keys these options take their defaults from (``ftframe.config.portable``):
    every portable key maps to the option of the same name; ``backend.<option>`` still overrides it."""

    epochs: int = 3
    """Passes over the training split (early stopping may end sooner)."""
    batch_size: int = 8
    """Examples per batch."""
    grad_accum: int = 1
    """Gradient accumulation: optimizer steps every ``grad_accum`` batches."""
    lr: float = 2e-4
    """Peak learning rate (AdamW)."""
    scheduler: str = "cosine"
    """``cosine``, ``linear`` or ``constant`` (all after the warmup)."""
    warmup_steps: int = 0
    """Optimizer steps of linear warmup (0: use ``warmup_ratio``)."""
    warmup_ratio: float = 0.1
    """Used when ``warmup_steps`` is 0: a share of all optimizer steps."""
    weight_decay: float = 0.0
    """AdamW weight decay (not applied to biases and norms)."""
    grad_clip: float = 1.0
    """Clip the gradient norm to this (0 disables)."""
    label_smoothing: float = 0.0
    """Cross-entropy label smoothing on the trained tokens."""
    dropout: float = 0.0
    """Dropout while training: on the adapter input for LoRA-type backends, the model's own attention
    and hidden dropout for full fine-tuning. 0.05 cost 26% of LoRA training throughput on the CPU."""
    seed: int | None = None
    """Seed for adapter initialisation and data order (null: the run's ``seed``)."""
    precision: str = "auto"
    """``fp32``, ``bf16-mixed`` (autocast), ``bf16-true`` (frozen weights held in bf16, trained ones in
    fp32) or ``auto`` (``bf16-true`` where the hardware has bf16 maths, else ``fp32``)."""
    max_length: int = 512
    """Longest tokenised example; longer ones are cut from the end (counted and reported as
    ``truncated`` in the training info)."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run all epochs)."""
    early_stopping_patience: int | None = 2
    """Epochs without improvement of the task metric before stopping (null disables)."""
    group_by_length: bool = True
    """Batch examples of similar length together (less padding; exact)."""
    packing: bool = True
    """Pack each batch into one row without padding, computing the rows' common prefix (e.g. a shared
    system prompt) once, with attention kept per row (exact; ``ftframe.engine.packing``). A batch is packed
    when that saves at least 10% of its token rows and the model's architecture is supported; other
    objectives (classification head, preference pairs) and architectures train on padded rows."""
    fast_head: bool = True
    """Compute the LM head and loss only at trained positions (exact; the vocabulary head is costly)."""
    attention: str = "auto"
    """Attention kernel while training: ``eager`` (plain matmul + softmax), ``sdpa`` (PyTorch's fused
    kernel) or ``auto`` (``eager`` on the CPU for rows up to 256 tokens, else ``sdpa``). On the CPU,
    sdpa's backward pass with a padding mask measured 2x slower for short rows than eager attention
    (docs/benchmarks.md). Evaluation keeps the model's own setting."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass instead of keeping them: far less
    activation memory for ~30% more compute."""
    memory_check: str = "error"
    """Memory preflight before training: ``error`` refuses a run whose estimated need exceeds the
    available memory, ``warn`` only prints the estimate, ``off`` skips it."""
    memory_available_gb: float | None = None
    """Memory the preflight may plan with (null: what is available now — free GPU memory on a GPU,
    available RAM on the CPU)."""

    def check_hyperparams(self) -> None:
        """Raise a :class:`ConfigError` naming the ``backend.*`` key of the first bad option."""
        from ftframe.config import one_of
        from ftframe.errors import ConfigError

        one_of("backend.precision", self.precision, PRECISIONS)
        one_of("backend.scheduler", self.scheduler, SCHEDULERS)
        one_of("backend.memory_check", self.memory_check, MEMORY_CHECKS)
        one_of("backend.attention", self.attention, ATTENTIONS)
        for key in ("epochs", "batch_size", "grad_accum"):
            if getattr(self, key) < 1:
                raise ConfigError(f"backend.{key} must be at least 1, got {getattr(self, key)}.")
        for key in ("dropout", "label_smoothing", "warmup_ratio"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"backend.{key} must be in [0, 1), got {getattr(self, key)}.")
        for key in ("lr", "weight_decay", "grad_clip", "warmup_steps"):
            if getattr(self, key) < 0:
                raise ConfigError(f"backend.{key} must not be negative, got {getattr(self, key)}.")

    auto_precision: ClassVar[str] = "bf16-true"
    """What ``precision=auto`` becomes where the hardware has bf16 maths (a backend's Config may differ)."""

    def resolved_precision(self) -> str:
        """``precision`` with ``auto`` resolved for this hardware and backend."""
        if self.precision != "auto":
            return self.precision
        return self.auto_precision if resolve_precision("auto") != "fp32" else "fp32"

    def training_attention(self, device: str, longest: int) -> str:
        """The attention implementation to train with on ``device`` for rows of up to ``longest`` tokens."""
        if self.attention != "auto":
            return self.attention
        return "eager" if device == "cpu" and longest <= EAGER_MAX_TOKENS else "sdpa"

    def lightning_precision(self) -> str:
        """Lightning's precision flag. For ``bf16-true`` the backend loads the weights in bf16 and keeps
        the trained adapter weights in fp32 itself; Lightning's own ``bf16-true`` would cast those too."""
        return {"fp32": "32-true", "bf16-mixed": "bf16-mixed", "bf16-true": "32-true"}[self.resolved_precision()]
