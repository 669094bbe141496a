"""LoRA (and DoRA) adapters with PEFT, trained on the Lightning engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ftframe.api import LoadedModel, TaskInfo
from ftframe.engine import TrainHyperparams, pad_id
from ftframe.errors import ConfigError
from ftframe_backends.local import LocalBackend

# The training-time parts (torch, peft, Lightning) are imported where a job uses them: the classification
# head in ftframe_backends.classifier, the adapter's training-step forward in ftframe_backends.lora_steps.
HEADS = ("lm", "classifier")
HEAD_INITS = ("random", "imprint")
ADAPTER_COMPUTES = ("auto", "fp32", "bf16")


@dataclass
class LoraConfig(TrainHyperparams):
    synonyms: ClassVar[dict[str, str]] = {**TrainHyperparams.synonyms, "rank": "r", "lora_r": "r",
                                          "lora_rank": "r", "lora_alpha": "alpha", "lora_dropout": "dropout"}

    r: int = 16
    """LoRA rank."""
    alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    target_modules: Any = "all-linear"
    """``all-linear`` (every Linear layer of the decoder, not the output head) or a list of module names
    (e.g. ``[q_proj, v_proj]``)."""
    layers: list[int] | None = None
    """Only adapt these decoder layers (null: all)."""
    last_layers: int | None = None
    """Only adapt the last N decoder layers: the backward pass then stops N layers down, which makes
    a step much cheaper on a CPU. Exclusive with ``layers``."""
    use_dora: bool = False
    """Weight-decomposed LoRA (DoRA): a trained magnitude per output besides the low-rank direction."""
    head: str = "lm"
    """``lm``: the model answers in text (the label as the reply; generation or label scoring).
    ``classifier`` (classification tasks): a linear layer over the labels on the last prompt token's
    hidden state, trained with the adapter on cross-entropy (docs/classification.md)."""
    head_init: str = "random"
    """Initial weights of the classification head (``head=classifier``): ``random`` (the model's own
    initialiser) or ``imprint`` (each label's row from the mean last-prompt-token state of its training
    examples under the base model: training starts from a nearest-class-mean classifier)."""
    adapter_compute: str = "auto"
    """Dtype of the adapter's matmuls while training on a bf16 base. ``fp32``: peft's way, activations
    are cast to fp32 for the adapter and back. ``bf16``: the adapter runs in bf16 under autocast (its
    weights, gradients and optimizer state stay fp32); measured 1.3x faster LoRA steps on the CPU.
    ``auto``: ``bf16`` with ``precision`` ``bf16-true`` and ``head=lm``, else ``fp32``."""
    lean_adapter: bool = True
    """While training, each plain LoRA layer computes ``base(x) + ((A x) * scaling) B`` directly instead of
    through peft's general forward (adapter bookkeeping per call, and the scaling applied to the wide
    output instead of the rank-r intermediate): measured 1.09x the training throughput on the CPU (r16 on
    all linear layers; 1.02x-1.13x in bare step loops). The same maths (bit for bit where the scaling is a
    power of two, as alpha = 2r is); validation, evaluation and DoRA/biased/4-bit adapters use peft's
    forward. ``false``: peft's forward throughout."""
    bf16_adapter_compute: ClassVar[bool] = True
    """Whether the adapter may compute in bf16 at all (a backend whose base layers are not plain bf16
    Linear layers, e.g. 4-bit, keeps fp32)."""

    def __post_init__(self) -> None:
        self.check_hyperparams()
        if self.layers and self.last_layers:
            raise ConfigError("backend.layers and backend.last_layers are exclusive; set one of them.")
        if self.last_layers is not None and self.last_layers < 1:
            raise ConfigError(f"backend.last_layers must be at least 1, got {self.last_layers}.")
        from ftframe.config import one_of

        one_of("backend.head", self.head, HEADS)
        one_of("backend.adapter_compute", self.adapter_compute, ADAPTER_COMPUTES)
        one_of("backend.head_init", self.head_init, HEAD_INITS)
        if self.head_init != "random" and self.head != "classifier":
            raise ConfigError(f"backend.head_init={self.head_init} initialises the classification head; it needs "
                              f"backend.head=classifier (backend.head is {self.head!r}).")
        if self.adapter_compute == "bf16" and not self.bf16_adapter_compute:
            raise ConfigError("backend.adapter_compute=bf16 is not supported by this backend; use auto or fp32.")
        if self.adapter_compute == "bf16" and self.resolved_precision() != "bf16-true":
            raise ConfigError("backend.adapter_compute=bf16 needs the base held in bf16 "
                              f"(backend.precision=bf16-true, or auto on bf16 hardware); it resolves to "
                              f"{self.resolved_precision()!r}. Use adapter_compute=auto or fp32.")
        if self.r < 1:
            raise ConfigError(f"backend.r must be at least 1, got {self.r}.")

    def resolved_adapter_compute(self) -> str:
        """``adapter_compute`` with ``auto`` resolved."""
        if self.adapter_compute != "auto":
            return self.adapter_compute
        bf16 = self.bf16_adapter_compute and self.head == "lm" and self.resolved_precision() == "bf16-true"
        return "bf16" if bf16 else "fp32"

    def lightning_precision(self) -> str:
        # bf16 adapter maths: Lightning's autocast around each step (the base is bf16 already, so only the
        # adapter's fp32 weights are cast, once per matmul).
        if self.resolved_adapter_compute() == "bf16":
            return "bf16-mixed"
        return super().lightning_precision()


def linear_module_names(model: Any) -> list[str]:
    """Names of the Linear layers inside the decoder (what peft's ``all-linear`` means: no output head)."""
    import torch

    head = model.get_output_embeddings()
    linear = (torch.nn.Linear,)
    try:  # 4-bit layers of a quantised base are Linear subclasses in bitsandbytes; be explicit anyway
        import bitsandbytes as bnb

        linear += (bnb.nn.Linear4bit,)
    except ImportError:
        pass
    return sorted({name.rsplit(".", 1)[-1] for name, mod in model.named_modules()
                   if isinstance(mod, linear) and mod is not head})


class LoraBackend(LocalBackend):
    """Low-rank adapters on a frozen base (PEFT), trained with the task metric steering the best epoch.

    With ``precision`` ``bf16-true`` (what ``auto`` picks on hardware with bf16 maths) the frozen base is
    held in bf16 and the adapter weights in fp32."""

    name = "lora"
    Config = LoraConfig
    label = "LoRA"

    def peft_config(self, model: Any) -> Any:
        from peft import LoraConfig as PeftLoraConfig

        c = self.config
        layers = list(c.layers) if c.layers else None
        if c.last_layers:
            n = int(model.config.num_hidden_layers)
            layers = list(range(max(0, n - c.last_layers), n))
        from ftframe_backends.classifier import HEAD_NAME

        target = c.target_modules if isinstance(c.target_modules, str) else list(c.target_modules)
        classifier = c.head == "classifier"
        if target == "all-linear" and (layers is not None or classifier):
            # peft takes layer subsets only with explicit names; the classification head is trained
            # whole (PEFT's modules_to_save for SEQ_CLS), never adapted.
            target = [n for n in linear_module_names(model) if n != HEAD_NAME]
        return PeftLoraConfig(r=c.r, lora_alpha=c.alpha, lora_dropout=c.dropout, target_modules=target,
                              layers_to_transform=layers, use_dora=c.use_dora,
                              task_type="SEQ_CLS" if classifier else "CAUSAL_LM")

    classifier_head: ClassVar[bool] = True
    """Whether ``backend.head=classifier`` is supported (its ``prepare`` builds the classifier model)."""

    @classmethod
    def config_problems(cls, config: Any) -> list[str]:
        head = (config.get("backend") or {}).get("head")
        if head != "classifier":
            return []
        if not cls.classifier_head:
            return [(f"backend.head=classifier is not supported by backend {cls.name!r}; use backend=lora, or "
                     f"backend.head=lm.")]
        task_type = (config.get("task") or {}).get("type")
        if task_type != "classification":
            return [f"backend.head=classifier needs a classification task; task.type is {task_type!r}."]
        return []

    def objective(self, job: Any) -> Any:
        # prepare() builds the head over this objective's labels and imprints it from the training split.
        self._objective, self._train_examples = self.objective_for(job.task), job.train
        return self._objective

    def objective_for(self, task: TaskInfo) -> Any:
        if self.config.head != "classifier":
            return self.module_cls
        if not self.classifier_head:
            raise ConfigError(f"backend.head=classifier is not supported by backend {self.name!r}; use "
                              f"backend=lora.")
        if task.type != "classification":
            raise ConfigError(f"backend.head=classifier needs a classification task; task.type is "
                              f"{task.type!r}.")
        from ftframe_backends.classifier import classifier_objective

        return classifier_objective(list(task.labels or []))

    def callbacks(self, model: Any) -> list[Any]:
        from ftframe_backends.lora_steps import AdapterTrainingSteps

        bf16, lean = self.config.resolved_adapter_compute() == "bf16", self.config.lean_adapter
        return [AdapterTrainingSteps(model, bf16=bf16, lean=lean)] if bf16 or lean else []

    def prepare(self, loaded: LoadedModel) -> Any:
        from peft import get_peft_model

        model = loaded.model
        if self.config.head == "classifier":
            from ftframe_backends.classifier import imprint_head, sequence_classifier

            pad = pad_id(loaded.tokenizer)
            model = sequence_classifier(model, self._objective.labels, pad)
            if self.config.head_init == "imprint":
                items = self._objective.encode(loaded.tokenizer, self._train_examples, self.config.max_length).items
                imprint_head(model, items, pad, batch_size=self.config.batch_size)
        # autocast_adapter_dtype: adapter weights in fp32 even when the base is bf16.
        return get_peft_model(model, self.peft_config(model), autocast_adapter_dtype=True)

    def tuned_model(self, base: LoadedModel, adapter_dir: Path, task: TaskInfo) -> Any:
        if self.config.head != "classifier":
            return super().tuned_model(base, adapter_dir, task)
        from peft import PeftModel

        from ftframe_backends.classifier import sequence_classifier

        labels = self.objective_for(task).labels  # refuses a run dir that records no label set
        model = sequence_classifier(base.model, labels, pad_id(base.tokenizer))
        # The trained head is in the adapter folder (PEFT's modules_to_save) and replaces the fresh one.
        return PeftModel.from_pretrained(model, adapter_dir, autocast_adapter_dtype=True)
