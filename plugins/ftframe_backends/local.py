"""What every local backend shares: loading the base, training through ``fit_local``, reporting."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, ClassVar

from ftframe.api import Backend, LoadedModel, Predictor, TaskInfo, TrainedModel
from ftframe.errors import DataError

if TYPE_CHECKING:
    from ftframe.engine import CausalLMModule, TrainJob


class LazyClass:
    """A class attribute naming a class by ``"module:Name"``, imported when first read.

    So a backend module can name a training objective (a torch/Lightning class) without importing torch:
    ``module_cls = LazyClass("ftframe_backends.preference_objectives:DPOModule")``; reading ``self.module_cls``
    or ``Backend.module_cls`` gives the class itself. Assigning a class directly works as well."""

    def __init__(self, target: str):
        self.target = target

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


def set_dropout(model: Any, p: float) -> None:
    """Set every dropout of ``model`` (``nn.Dropout`` modules and attention dropout rates) to ``p``."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = p


class LocalBackend(Backend):
    """Base of the backends that train on the Lightning engine in this process.

    A subclass sets ``name``, ``Config`` (a :class:`ftframe.engine.TrainHyperparams` subclass) and
    ``label``, and implements :meth:`prepare` (choose what trains: adapters, layers, quantisation);
    ``module_cls`` is the training objective.
    """

    label: ClassVar[str] = ""
    """Appended to the model name in predictors (``SmolLM2 + LoRA``)."""
    module_cls: ClassVar[type[CausalLMModule]] = LazyClass("ftframe.engine.module:CausalLMModule")  # type: ignore[assignment]
    memory_hints: ClassVar[tuple[str, ...]] = ("backend=qlora (a 4-bit base)",)
    """What to suggest first when training would not fit in memory (a lighter backend)."""

    def precision(self) -> str:
        return self.config.resolved_precision()

    def load_dtype(self) -> str:
        """The dtype the base weights are loaded in: bf16 for ``bf16-true`` (the trained weights stay fp32)."""
        return "bf16" if self.precision() == "bf16-true" else "fp32"

    def load(self, job: TrainJob) -> LoadedModel:
        return job.load_model(self.load_dtype())

    def check_examples(self, job: TrainJob) -> None:
        """Refuse, before any model loads, training examples this backend cannot train on."""
        found = self.example_problems(job.train)
        if found:
            raise DataError("\n".join(found))

    def baseline(self, job: TrainJob) -> Predictor:
        from ftframe.engine import LocalPredictor

        self.check_examples(job)
        m = self.load(job)
        return LocalPredictor(m.model, m.tokenizer, name=f"{m.name} (base)", batch_size=job.eval_config.batch_size,
                              precision=job.eval_config.precision)

    def prepare(self, loaded: LoadedModel) -> Any:
        """The model to train, with its trainable parameters chosen."""
        raise NotImplementedError

    def objective(self, job: TrainJob) -> type[CausalLMModule]:
        """The training objective for ``job`` (:meth:`objective_for` its task; a backend that needs more of
        the job for :meth:`prepare` keeps it here)."""
        return self.objective_for(job.task)

    def objective_for(self, task: TaskInfo) -> type[CausalLMModule]:
        """The objective for ``task``: ``module_cls`` unless an option chooses another (e.g. a
        classification head). Its ``val_predictor`` answers for the tuned model, in the run and when a
        saved run is loaded (:meth:`tuned_predictor`)."""
        return self.module_cls

    def tuned_predictor(self, model: Any, tokenizer: Any, task: TaskInfo, *, name: str, batch_size: int,
                        precision: str) -> Predictor:
        predictor = self.objective_for(task).val_predictor(model, tokenizer, batch_size, precision=precision)
        predictor.name = name
        return predictor

    def callbacks(self, model: Any) -> list[Any]:
        """Extra Lightning callbacks for this backend's training."""
        return []

    def train(self, job: TrainJob) -> TrainedModel:
        from ftframe.engine import fit_local

        self.check_examples(job)
        module_cls = self.objective(job)
        loaded = self.load(job)
        model = self.prepare(loaded)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        fit = fit_local(job, model, loaded.tokenizer, self.config, module_cls=module_cls,
                        callbacks=self.callbacks(model), memory_hints=self.memory_hints)
        info = {"backend": self.name, "precision": self.precision(), "trainable_params": trainable,
                "total_params": total, **fit.info(), "base_model": loaded.name}
        predictor = self.tuned_predictor(model, loaded.tokenizer, job.task, name=f"{loaded.name} + {self.label}",
                                         batch_size=job.eval_config.batch_size, precision=job.eval_config.precision)
        return TrainedModel(predictor=predictor, model=model, tokenizer=loaded.tokenizer, kind=self.kind, info=info)
