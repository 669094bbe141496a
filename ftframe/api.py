"""The contracts plugins implement, and the values that flow between them.

Every plugin class has a registry ``name`` and a ``Config`` dataclass (its schema, stored in Hydra's
ConfigStore by the CLI). The host instantiates it with the validated config and calls one verb:

=============  ==========================================  =====================================
kind           verb                                        returns
=============  ==========================================  =====================================
DataFormat     ``load()``                                  :class:`LoadedData`
ModelSource    ``load(dtype=...)``                         :class:`LoadedModel`
Backend        ``baseline(job)`` / ``train(job)``          :class:`Predictor` / :class:`TrainedModel`
Metric         ``compute(predictions, task[, context])``   :class:`MetricResult`
Judge          ``judge(prompt, a, b)``                     :class:`Verdict`
Exporter       ``export(ctx)``                             :class:`ExportResult`
=============  ==========================================  =====================================

Examples use one canonical shape everywhere: the OpenAI chat schema (``messages`` with ``role`` /
``content``, optional ``tools`` and per-message ``weight``), plus ``chosen``/``rejected`` for preferences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

Message = dict[str, Any]
"""One chat message: ``{"role": ..., "content": ..., "weight"?: 0|1, "tool_calls"?: [...]}``."""


# ---------------------------------------------------------------------------------------------- data
@dataclass
class Example:
    """One canonical training/evaluation example and where it came from (``file:line``).

    A preference pair has ``chosen`` and ``rejected`` (one assistant message each); its ``messages`` are
    then the prompt conversation only (no reply of its own), as in OpenAI's DPO files. An unpaired
    preference example (KTO data) is a conversation whose last assistant reply is ``desirable`` (True) or
    undesirable (False); the canonical record stores it as ``"label"``, TRL's and LLaMA-Factory's key.
    """

    messages: list[Message]
    source: str = ""
    tools: list[dict[str, Any]] | None = None
    chosen: Message | None = None
    rejected: Message | None = None
    desirable: bool | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any], source: str = "") -> Example:
        """The example of a canonical record (checked by ``ftframe.preflight.format_checks.record_errors``)."""
        return cls(messages=record["messages"], source=source, tools=record.get("tools"),
                   chosen=record.get("chosen"), rejected=record.get("rejected"), desirable=record.get("label"))

    @property
    def is_preference(self) -> bool:
        """A pair: a chosen and a rejected reply."""
        return self.chosen is not None

    @property
    def is_labelled(self) -> bool:
        """An unpaired preference example: its reply is labelled desirable or undesirable (KTO data)."""
        return self.desirable is not None

    @property
    def prompt(self) -> list[Message]:
        """The conversation up to (not including) the last assistant message; a preference pair's whole
        ``messages``."""
        if self.is_preference:
            return list(self.messages)
        last = max((i for i, m in enumerate(self.messages) if m.get("role") == "assistant"), default=None)
        return list(self.messages if last is None else self.messages[:last])

    @property
    def target(self) -> str | None:
        """The content of the last assistant message (the gold answer; for a pair, the chosen reply; none
        for a reply labelled undesirable, which is no answer to match)."""
        if self.chosen is not None:
            return self.chosen.get("content")
        if self.desirable is False:
            return None
        for m in reversed(self.messages):
            if m.get("role") == "assistant":
                if m.get("tool_calls"):  # its text, then one <tool_call> block per call (ftframe.tool_calls)
                    from ftframe.tool_calls import reply_text

                    return reply_text(m)
                return m.get("content")
        return None

    def to_record(self) -> dict[str, Any]:
        """The example in the canonical JSONL shape."""
        rec: dict[str, Any] = {"messages": self.messages}
        for key in ("tools", "chosen", "rejected"):
            if getattr(self, key) is not None:
                rec[key] = getattr(self, key)
        if self.desirable is not None:
            rec["label"] = self.desirable
        return rec


@dataclass
class Rejected:
    """An input row that was not used, kept with its reason (nothing disappears silently)."""

    source: str
    reason: str
    raw: Any = None
    kind: str = "invalid"
    """Error type for counting, e.g. the cookbook's ``missing_content`` (see ``ftframe.preflight``)."""


@dataclass
class LoadedData:
    examples: list[Example]
    rejected: list[Rejected] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    """Every input file read, for the manifest's content hashes."""


# --------------------------------------------------------------------------------------------- model
@dataclass
class LoadedModel:
    """A model and its tokenizer, ready on the CPU (or the trainer's device)."""

    model: Any
    tokenizer: Any
    name: str
    path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ predict
@dataclass
class Prediction:
    """One evaluated example: what went in, the gold answer, and what came out."""

    index: int
    prompt: list[Message]
    gold: str | None
    predicted: str
    source: str = ""
    scores: dict[str, float] | None = None
    """Per-candidate log-likelihoods when the prediction came from label scoring."""
    reference_loglik: float | None = None
    """Log-likelihood of the gold answer under the model (filled when a metric ``needs`` it)."""
    reference_tokens: int | None = None
    """How many tokens the gold answer has (the denominator of perplexity)."""

    def to_record(self) -> dict[str, Any]:
        rec = {"index": self.index, "source": self.source, "input": self.prompt, "gold": self.gold,
               "predicted": self.predicted}
        if self.scores is not None:
            rec["scores"] = self.scores
        if self.reference_loglik is not None:
            rec["reference_loglik"], rec["reference_tokens"] = self.reference_loglik, self.reference_tokens
        return rec

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Prediction:
        """The inverse of :meth:`to_record` (e.g. another run's ``predictions.jsonl``)."""
        return cls(int(rec["index"]), rec["input"], rec.get("gold"), rec["predicted"], rec.get("source", ""),
                   rec.get("scores"), rec.get("reference_loglik"), rec.get("reference_tokens"))


@runtime_checkable
class Predictor(Protocol):
    """One interface for every model that answers: local weights, a provider endpoint, a server.

    Metrics never know which one made a prediction.
    """

    name: str

    def generate(self, prompts: Sequence[list[Message]], *, max_new_tokens: int,
                 progress: Callable[[int], None] | None = None) -> list[str]:
        """Greedy answers for each conversation (deterministic where the model allows)."""
        ...

    def score(self, prompts: Sequence[list[Message]], candidates: Sequence[str], *,
              progress: Callable[[int], None] | None = None) -> list[list[float]]:
        """Log-likelihood of each candidate as the assistant reply, ``[prompt][candidate]``."""
        ...


@runtime_checkable
class ReplyScorer(Protocol):
    """A predictor that can also say how likely a given reply is (perplexity, log-likelihood judges).

    Kept apart from :class:`Predictor` so endpoints without log-probabilities remain predictors.
    """

    def loglik(self, prompts: Sequence[list[Message]], replies: Sequence[str], *,
               progress: Callable[[int], None] | None = None) -> list[tuple[float, int]]:
        """``(sum of token log-probabilities, number of tokens)`` of each reply to its own prompt."""
        ...


# ------------------------------------------------------------------------------------------ metrics
@dataclass
class TaskInfo:
    """What metrics and gates need to know about the task."""

    name: str
    type: str
    labels: list[str] | None = None
    output_schema: dict[str, Any] | None = None
    """The JSON schema answers should conform to (``task.output_schema``), for structured-output tasks."""


@dataclass
class MetricResult:
    """Scalar ``values`` (the one named like the metric is its headline) plus structured ``details``."""

    values: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class MetricContext:
    """What the engine offers a metric whose ``compute`` accepts a ``context`` argument (opt-in)."""

    run_dir: Path | None = None
    """Where the metric may write artifacts (plots, audit files); ``None`` during in-loop validation."""
    prefix: str = ""
    """File-name prefix of this evaluation (``""``, ``baseline_``, ``golden_``...)."""
    baseline: Sequence[Prediction] | None = None
    """The untuned model's predictions on the same examples, when this run made them."""
    registry: Any = None
    """The plugin registry (``registry.create("judge", name, options)``)."""


@dataclass
class Verdict:
    """A judge's decision on answer ``a`` versus ``b``: ``"a"``, ``"b"`` or ``"tie"``, with its reason."""

    winner: str
    reason: str = ""


# -------------------------------------------------------------------------------------- train/export
@dataclass
class TrainedModel:
    """What a backend hands back: something to evaluate, and what exporters need."""

    predictor: Predictor
    model: Any = None
    tokenizer: Any = None
    kind: str = "adapter"
    """``adapter`` (PEFT), ``full`` (all weights) or ``remote`` (a provider model id)."""
    remote_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExportContext:
    """Everything an exporter may use; it writes only below ``run_dir``."""

    run_dir: Path
    trained: TrainedModel
    config: dict[str, Any]
    metrics: dict[str, Any]
    baseline_metrics: dict[str, Any] | None
    gate: dict[str, Any]
    data: dict[str, Any]
    predictions: list[Prediction]
    manifest: dict[str, Any]


@dataclass
class ExportResult:
    paths: list[str]
    verified: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ plugins
@dataclass
class NoConfig:
    """For plugins without options."""


class Plugin:
    """Base of every plugin class: a registry ``name`` and a ``Config`` schema."""

    name: ClassVar[str]
    Config: ClassVar[type] = NoConfig
    description: ClassVar[str] = ""

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()


class DataFormat(Plugin):
    """Reads a file or folder into canonical examples (``Config`` must have a ``path`` field)."""

    path_kind: ClassVar[str] = "any"
    """What ``path`` must name: ``file``, ``folder`` or ``any``. The host checks it (and that the path can be
    read and is not empty) before ``load``, in ``ftframe validate``, ``ftframe data check`` and the run."""

    def load(self) -> LoadedData:
        raise NotImplementedError


class ModelSource(Plugin):
    """Resolves a model reference to weights and a tokenizer."""

    path_kind: ClassVar[str] = "any"
    """For a source whose ``Config`` has a ``path``: what it must name (``file``, ``folder`` or ``any``); the
    host checks it, and that it can be read, in ``ftframe validate`` and before a run."""

    def load(self, *, dtype: Any = None) -> LoadedModel:
        raise NotImplementedError

    def load_tokenizer(self) -> Any:
        """The tokenizer alone (with its chat template), for data checks; sources override this to skip
        loading the weights."""
        return self.load().tokenizer


class Backend(Plugin):
    """Turns data and a model into a tuned model."""

    kind: ClassVar[str] = "adapter"
    """What ``train`` produces (``TrainedModel.kind``): ``adapter`` (weights on a frozen base), ``full``
    (all weights) or ``remote`` (a model id at a provider). Validation checks exporters against it."""
    default_exporters: ClassVar[tuple[str, ...] | None] = None
    """The exporters a run of this backend uses when neither the task nor the command line chooses any
    (``full``: ``merged, model_card``; a provider: ``model_card``). ``None``: conf/config.yaml's default
    (``adapter, model_card``)."""

    @classmethod
    def config_problems(cls, config: Any) -> list[str]:
        """What in the whole run ``config`` this backend cannot do (e.g. ``eval.mode=score`` at a provider,
        whose chat endpoint returns no likelihoods): one message per problem, naming the key to change and
        the backend's equivalent if it has one. Default: none. Called by ``ftframe validate`` and before a run
        starts, with the composed (unresolved) ``DictConfig``: read keys with ``.get()``. Portable ``train``
        values and the backend's own options are checked by the host (its ``Config``'s ``portable``,
        ``no_equivalent`` and ``__post_init__``)."""
        return []

    def example_problems(self, examples: Sequence[Example]) -> list[str]:
        """What in the training ``examples`` this backend cannot train on (e.g. DPO without preference
        pairs): one message per problem. The first-party local and provider backends check it before any
        model or request (in ``baseline`` and ``train``). Default: examples labelled desirable/undesirable
        (KTO data), which a backend that learns every reply would learn the undesirable ones from; a
        backend for such data (``kto``) overrides this."""
        labelled = [ex for ex in examples if ex.is_labelled]
        if not labelled:
            return []
        bad = sum(1 for ex in labelled if ex.desirable is False)
        return [(f"backend={self.name} learns every reply, but {len(labelled)} of {len(examples)} training examples "
                 f"carry a KTO 'label' ({bad} undesirable; first: {labelled[0].source}): it would learn to give "
                 f"the undesirable replies too. Use backend=kto for labelled data, or drop the 'label' and the "
                 f"undesirable rows to train on the rest.")]

    def baseline(self, job: Any) -> Predictor:
        """A predictor for the untuned model, for the baseline evaluation."""
        raise NotImplementedError

    def train(self, job: Any) -> TrainedModel:
        raise NotImplementedError

    def tuned_model(self, base: LoadedModel, adapter_dir: Path, task: TaskInfo) -> Any:
        """The tuned model of a finished run of this backend, from its ``adapter`` export on ``base``
        (``ftframe eval``/``predict``/``serve``/``export`` of a run dir). Default ``None``: the host loads
        the folder as a PEFT adapter on the causal LM, with adapter weights kept in fp32 as in training
        (``ftframe.engine.saved_run``; this contract module imports no model code)."""
        return None

    def tuned_predictor(self, model: Any, tokenizer: Any, task: TaskInfo, *, name: str, batch_size: int,
                        precision: str) -> Predictor | None:
        """The predictor over a model :meth:`tuned_model` loaded. Default ``None``: the host's
        ``ftframe.engine.LocalPredictor`` (text generation and label scoring by the LM head)."""
        return None


class Metric(Plugin):
    """Scores predictions. ``higher_is_better`` tells gates and checkpoint selection which way is up.

    ``compute`` may take a third argument, ``context`` (a :class:`MetricContext`); the engine passes it
    only to metrics that accept it.
    """

    higher_is_better: ClassVar[bool] = True
    needs: ClassVar[frozenset[str]] = frozenset()
    """Extra inputs to compute before scoring: ``reference_loglik`` (the gold answer's log-likelihood,
    needs a :class:`ReplyScorer` predictor)."""
    in_loop: ClassVar[bool] = True
    """Whether it also scores the validation split every epoch (false for costly or comparative ones)."""

    def compute(self, predictions: Sequence[Prediction], task: TaskInfo) -> MetricResult:
        raise NotImplementedError


class Judge(Plugin):
    """Decides which of two answers to one prompt is better.

    A judge that cannot decide a pair (e.g. a labels file without it) raises
    :class:`ftframe.errors.NoVerdict`; the caller counts such pairs as unjudged.
    """

    def prepare(self, registry: Any) -> None:
        """Load what the judge needs (e.g. a model through a model source) before the first verdict."""

    def judge(self, prompt: list[Message], a: str, b: str) -> Verdict:
        raise NotImplementedError

    def judge_batch(self, items: Sequence[tuple[list[Message], str, str]]) -> list[Verdict | None]:
        """Verdicts for many ``(prompt, a, b)``; ``None`` where :class:`NoVerdict` was raised.

        Judges with a batched model override this; the default asks :meth:`judge` one pair at a time.
        """
        from ftframe.errors import NoVerdict

        out: list[Verdict | None] = []
        for prompt, a, b in items:
            try:
                out.append(self.judge(prompt, a, b))
            except NoVerdict:
                out.append(None)
        return out


class Exporter(Plugin):
    """Writes the result somewhere useful, below the run dir."""

    accepts: ClassVar[frozenset[str] | None] = None
    """The backend kinds (``Backend.kind``) it can export; ``None``: any. Checked before a run starts,
    so a paid or long training job never ends in an exporter that cannot handle its result."""

    @classmethod
    def config_problems(cls, config: Any) -> list[str]:
        """What in the whole ``config`` this exporter cannot export, beyond :attr:`accepts` (e.g. a model
        with a classification head instead of an LM head): one message per problem, naming the key to
        change. Default: none.

        Called before a run starts, with the composed (unresolved) config, and by ``ftframe export
        RUN_DIR`` with the run's saved config and the exporters given there. ``config`` is an OmegaConf
        ``DictConfig`` in both cases: read keys with ``.get()``, as a plugin's own keys may be absent."""
        return []

    def export(self, ctx: ExportContext) -> ExportResult:
        raise NotImplementedError


PLUGIN_KINDS: dict[str, type[Plugin]] = {
    "data_format": DataFormat,
    "model_source": ModelSource,
    "backend": Backend,
    "metric": Metric,
    "judge": Judge,
    "exporter": Exporter,
}
"""Plugin kind -> base class. The hook for kind ``k`` is ``ftframe_{k}s``."""
