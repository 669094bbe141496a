"""Hyperparameters every local backend takes (backend ``Config`` classes inherit from this)."""

from __future__ import annotations

from dataclasses import dataclass

PRECISIONS = {"fp32": "32-true", "32-true": "32-true", "32": "32-true",
              "bf16-mixed": "bf16-mixed", "bf16-true": "bf16-true"}
SCHEDULERS = ("cosine", "linear", "constant")


@dataclass
class TrainHyperparams:
    epochs: int = 3
    batch_size: int = 8
    grad_accum: int = 1
    """Gradient accumulation: optimizer steps every ``grad_accum`` batches."""
    lr: float = 2e-4
    scheduler: str = "cosine"
    """``cosine``, ``linear`` or ``constant`` (all after the warmup)."""
    warmup_steps: int = 0
    warmup_ratio: float = 0.1
    """Used when ``warmup_steps`` is 0: a share of all optimizer steps."""
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    """Clip the gradient norm to this (0 disables)."""
    label_smoothing: float = 0.0
    precision: str = "fp32"
    """``fp32``, ``bf16-mixed`` (autocast) or ``bf16-true`` (base held in bf16). fp32 measured fastest
    for small-batch LoRA on the 2-core CPU (see docs/benchmarks.md)."""
    max_length: int = 512
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run all epochs)."""
    early_stopping_patience: int | None = 2
    """Epochs without improvement of the task metric before stopping (null disables)."""
    group_by_length: bool = True
    """Batch examples of similar length together (less padding; exact)."""
    fast_head: bool = True
    """Compute the LM head and loss only at trained positions (exact; the vocabulary head is costly)."""

    def lightning_precision(self) -> str:
        return PRECISIONS[self.precision]
