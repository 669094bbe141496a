"""Structured schemas for the run config (the plugin groups get theirs from each plugin's ``Config``).

Stored in Hydra's ConfigStore as ``ftframe_schema``; ``conf/config.yaml`` extends it, so an unknown
top-level key or a wrong type fails at compose time with the full key named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class TaskConfig:
    name: str = "custom"
    type: str = "classification"
    """``classification`` (the reply is one label) or ``generation`` (free text)."""
    labels: list[str] | None = None
    """The label set; inferred from the training data when not given."""
    primary_metric: str = "macro_f1"
    """Drives early stopping, best-checkpoint selection and the summary's headline."""


@dataclass
class SplitConfig:
    train: float = 0.7
    val: float = 0.1
    test: float = 0.2
    stratify: bool = True
    """Keep each label's share in every split (classification tasks)."""
    seed: int | None = None
    """Defaults to the run's ``seed``."""


@dataclass
class EvalConfig:
    baseline: bool = True
    """Evaluate the untuned model on the test split first."""
    mode: str = "generate"
    """``generate`` (greedy answers), ``score`` (log-likelihood over the label set) or ``both``."""
    val_mode: str | None = None
    """How the validation split is scored during training; default: like ``mode`` (``both``: generate),
    so the epoch chosen is the best at what the test measures."""
    max_new_tokens: int = 16
    batch_size: int = 16
    limit: int | None = None
    """Evaluate on at most this many test examples (quick checks)."""
    golden: str | None = None
    """A held-out file (read with the ``data`` format) evaluated besides the test split, or instead of it
    with ``split.test=0``; the gate then checks the golden set's values."""


@dataclass
class TrainerConfig:
    """Lightning ``Trainer`` placement options (the hyperparameters live in ``backend``)."""

    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    log_every_n_steps: int = 5
    enable_progress_bar: bool = True
    deterministic: bool = False


@dataclass
class RunSchema:
    model: Any = MISSING
    data: Any = MISSING
    backend: Any = MISSING
    metrics: dict[str, Any] = field(default_factory=dict)
    exporters: dict[str, Any] = field(default_factory=dict)
    logger: Any = None
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    gate: dict[str, float] = field(default_factory=dict)
    """Threshold per metric (e.g. ``macro_f1: 0.6``): a minimum, or a maximum for metrics where lower is
    better (perplexity). Checked on the golden set when ``eval.golden`` is set, else on the test split;
    a run that misses one is marked ``gate_failed``, exports nothing and exits non-zero."""
    seed: int = 0
    threads: int | None = None
    """torch intra-op threads; default: all cores."""
