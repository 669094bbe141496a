"""Full fine-tuning: every weight trained, optionally with the first layers frozen and unfrozen
progressively (a Lightning ``BaseFinetuning`` callback, in :mod:`ftframe_backends.unfreezing`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ftframe.api import LoadedModel
from ftframe.engine import TrainHyperparams
from ftframe.errors import ConfigError
from ftframe_backends.local import LocalBackend, set_dropout


@dataclass
class FullConfig(TrainHyperparams):
    freeze_layers: int = 0
    """Keep the first N decoder layers frozen (0: train every layer)."""
    freeze_embeddings: bool = False
    """Keep the input embeddings frozen (with tied embeddings this freezes the output head too)."""
    unfreeze_per_epoch: int = 0
    """Progressive unfreezing: at the start of each epoch after the first, unfreeze this many more of the
    frozen layers, from the top down (0: they stay frozen)."""

    auto_precision: ClassVar[str] = "bf16-mixed"
    # precision=auto: bf16 autocast with fp32 weights; bf16-true holds (and updates) every weight in bf16.

    def __post_init__(self) -> None:
        self.check_hyperparams()
        for key in ("freeze_layers", "unfreeze_per_epoch"):
            if getattr(self, key) < 0:
                raise ConfigError(f"backend.{key} must not be negative, got {getattr(self, key)}.")
        if self.unfreeze_per_epoch and not self.freeze_layers:
            raise ConfigError("backend.unfreeze_per_epoch needs frozen layers to unfreeze: set backend.freeze_layers.")


def decoder_layers(model: Any) -> list[Any]:
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise ConfigError(f"backend=full: cannot find the decoder layers of {type(model).__name__} "
                          "(expected model.model.layers); use backend.freeze_layers=0.")
    return list(layers)


class FullBackend(LocalBackend):
    """Every weight of the model trained (optimizer state: 8 bytes per parameter more)."""

    name = "full"
    Config = FullConfig
    kind = "full"
    memory_hints = ("backend=lora (train an adapter, not every weight)", "backend=qlora (a 4-bit base)")
    label = "full fine-tuning"
    default_exporters = ("merged", "model_card")  # every weight changed: there is no adapter to save

    def prepare(self, loaded: LoadedModel) -> Any:
        model, c = loaded.model, self.config
        set_dropout(model, c.dropout)
        for p in model.parameters():
            p.requires_grad_(True)
        if c.freeze_embeddings:
            model.get_input_embeddings().requires_grad_(False)
        if c.freeze_layers:
            layers = decoder_layers(model)
            if c.freeze_layers >= len(layers):
                raise ConfigError(f"backend.freeze_layers={c.freeze_layers} freezes every one of the "
                                  f"{len(layers)} layers; use fewer.")
            for layer in layers[:c.freeze_layers]:
                layer.requires_grad_(False)
        return model

    def callbacks(self, model: Any) -> list[Any]:
        c = self.config
        if not c.unfreeze_per_epoch:
            return []
        from ftframe_backends.unfreezing import ProgressiveUnfreezing

        return [ProgressiveUnfreezing(decoder_layers(model)[:c.freeze_layers], c.unfreeze_per_epoch, c.weight_decay)]
