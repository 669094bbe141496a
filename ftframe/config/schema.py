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
    output_schema: Any = None
    """The JSON schema every answer should conform to (structured-output tasks), inline as a mapping. The
    ``json_schema`` metric checks answers against it, and ``eval.response_format`` can decode under it."""


@dataclass
class SplitFilesConfig:
    """Splits read from their own files (with the ``data`` format and options) instead of cut from
    ``data.path``; the splits without a file share ``data.path`` by their renormalised shares."""

    train: str | None = None
    val: str | None = None
    test: str | None = None


@dataclass
class SplitConfig:
    train: float = 0.7
    val: float = 0.1
    test: float = 0.2
    stratify: bool = True
    """Keep each label's share in every split (classification tasks)."""
    seed: int | None = None
    """Defaults to the run's ``seed``."""
    files: SplitFilesConfig = field(default_factory=SplitFilesConfig)
    """User-given split files, e.g. ``split.files.test=test.csv``."""


@dataclass
class DataChecksConfig:
    """The preflight report at the start of every run (``preflight.json``, ``preflight_tokens.png``)."""

    preflight: bool = True
    """Run the preflight stage (format errors, token statistics, duplicates, leakage, estimate)."""
    allow_leakage: bool = False
    """Let a run go on when held-out (val/test) prompts also occur in training, exactly or after text
    normalisation; by default that stops the run (``ftframe data check`` only warns)."""


@dataclass
class TransformsConfig:
    """Data transformations applied by the run, in this order, and recorded in the manifest."""

    dedup: bool = False
    """Drop exact duplicate examples before splitting (later copies go to rejected.jsonl)."""
    sample: int | None = None
    """Keep only this many examples of ``data.path``, drawn with the split seed after ``dedup`` and before
    splitting (e.g. a learning-curve point: ``transforms.sample=1024``); the manifest records how many of
    how many. Split files (``split.files``) are not sampled."""
    redact_pii: list[str] = field(default_factory=list)
    """Replace PII with typed placeholders before splitting: any of ``email``, ``phone``, ``iban``,
    ``credit_card``, ``ip``, or ``[all]``; counts go to the manifest."""
    too_long: str = "truncate"
    """Training examples over ``backend.max_length``: ``truncate`` (cut from the end), ``drop`` (to
    rejected.jsonl) or ``chunk`` (split at turn boundaries, see docs/data.md)."""
    chunk_overlap: int = 1
    """With ``too_long=chunk``: earlier exchanges repeated as untrained context in the next chunk."""


EVAL_PRECISIONS = ("auto", "fp32", "model")
"""``eval.precision``: compute in fp32 (answers independent of the batch), in the weights' own dtype, or
``auto``: fp32 to generate, the weights' dtype to score (``ftframe.engine.predict.LocalPredictor.precision_for``)."""


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
    response_format: str = "auto"
    """Constrained decoding of generated answers (``ftframe.engine.constrain``): ``text`` (free),
    ``json_object`` (any JSON object), ``json_schema`` (conforming to ``task.output_schema``), or ``auto``:
    ``json_schema`` when the task declares ``task.output_schema`` and the predictor can constrain its
    decoding, else ``text``. ``ftframe serve`` takes the same from each request's ``response_format``."""
    extractive: list[str] = field(default_factory=list)
    """String properties of ``task.output_schema`` whose values are decoded only as substrings of the
    prompt's last user message (copied, never invented; docs/evaluation.md, "Extractive decoding"). Needs
    the ``json_schema`` response format, the ``compact`` layout and a local model."""
    json_whitespace: str = "compact"
    """JSON layout under a JSON response format: ``compact`` (``json.dumps``' separators ``", "``/``": "``,
    no newlines: how the shipped tasks' answers are written) or ``flexible`` (any JSON whitespace)."""
    precision: str = "auto"
    """``fp32``: weights held in bf16/fp16 are computed in fp32 while evaluating (restored afterwards), so
    an answer does not depend on the batch it was in: batched evaluation gives the one-by-one answers.
    ``model``: the weights' own dtype (faster for scoring and on GPUs; bf16 rounding varies with the
    batch's shape, so near-ties can flip between batch sizes). ``auto``: fp32 to generate, the weights'
    dtype to score labels."""
    limit: int | None = None
    """Evaluate on at most this many test examples (quick checks)."""
    golden: str | None = None
    """A held-out file (read with the ``data`` format) evaluated besides the test split, or instead of it
    with ``split.test=0``; the gate then checks the golden set's values."""


@dataclass
class TrainConfig:
    """Portable hyperparameters: stated once, mapped by every backend to its own option (``epochs`` is
    ``backend.epochs`` for the local backends, ``backend.n_epochs`` at OpenAI and Together; the table is in
    docs/training.md). Null: the chosen backend's own default. A value the chosen backend has no equivalent
    for is refused when given on the command line and not applied (the run says so) when a task file sets
    it. The seed (``seed``) and the validation share (``split.val``) are portable top-level keys already."""

    epochs: int | None = None
    """Passes over the training split."""
    batch_size: int | None = None
    """Examples per optimizer step (per process in a distributed local run)."""
    lr: float | None = None
    """Peak learning rate (absolute). OpenAI takes none, only a multiplier of its own default."""
    max_length: int | None = None
    """Longest tokenised training example; longer ones are cut (``transforms.too_long``). Local backends only."""
    warmup_ratio: float | None = None
    """Share of the optimizer steps with a linear learning-rate warmup."""


@dataclass
class TrainerConfig:
    """Lightning ``Trainer`` placement and checkpointing (the hyperparameters live in ``train`` and ``backend``).
    Presets in ``conf/trainer/``; see docs/training.md for multi-GPU and SLURM use."""

    accelerator: str = "cpu"
    """Lightning accelerator: ``cpu``, ``gpu``, ``auto``."""
    devices: Any = 1
    """Processes/devices per node: a number, ``auto``, or a list of GPU indices."""
    num_nodes: int = 1
    """Machines in a multi-node run (each runs the same command, e.g. one SLURM task per device)."""
    strategy: str = "auto"
    """Lightning strategy: ``auto``, ``ddp``, ``ddp_spawn``, ``fsdp``, ``deepspeed_stage_2``, ..."""
    log_every_n_steps: int = 5
    enable_progress_bar: bool = True
    deterministic: bool = False
    checkpoint_every_n_steps: int | None = 50
    """Write ``checkpoints/last.ckpt`` every N optimizer steps (besides every validation and Ctrl-C);
    null: only at validation."""
    resume: bool = True
    """Continue from ``checkpoints/last.ckpt`` when the run dir has one (a run started again with the
    same ``hydra.run.dir`` after being killed)."""


@dataclass
class RunSchema:
    model: Any = MISSING
    data: Any = MISSING
    backend: Any = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    """Portable hyperparameters (each backend maps them to its own options)."""
    metrics: dict[str, Any] = field(default_factory=dict)
    exporters: dict[str, Any] = field(default_factory=dict)
    logger: Any = None
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    data_checks: DataChecksConfig = field(default_factory=DataChecksConfig)
    transforms: TransformsConfig = field(default_factory=TransformsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    gate: dict[str, float] = field(default_factory=dict)
    """Threshold per metric (e.g. ``macro_f1: 0.6``): a minimum, or a maximum for metrics where lower is
    better (perplexity). Checked on the golden set when ``eval.golden`` is set, else on the test split;
    a run that misses one is marked ``gate_failed``, exports nothing and exits non-zero."""
    seed: int = 0
    threads: int | None = None
    """torch intra-op threads; default: all cores."""
