"""How LoRA adapters compute during training steps (``backend.adapter_compute``, ``backend.lean_adapter``):
a Lightning callback that switches the adapter layers' forward for training steps only."""

from __future__ import annotations

from functools import partial
from typing import Any

from lightning.pytorch.callbacks import Callback


def _lean_forward(layer: Any, name: str, x: Any, *args: Any, **kwargs: Any) -> Any:
    """peft's vanilla LoRA forward for one active adapter, with the scaling on the rank-r intermediate."""
    import torch.nn.functional as F

    result = layer.base_layer(x, *args, **kwargs)
    if layer.disable_adapters:  # e.g. DPO's reference pass, inside the training step
        return result
    x = layer._cast_input_dtype(x, layer.lora_A[name].weight.dtype)
    low = F.linear(layer.lora_dropout[name](x), layer.lora_A[name].weight) * layer.scaling[name]
    return (result + F.linear(low, layer.lora_B[name].weight)).to(result.dtype)


def lean_layers(model: Any) -> list[tuple[Any, str]]:
    """``(layer, adapter)`` for each LoRA layer whose forward :func:`_lean_forward` computes exactly: a
    plain ``Linear`` LoRA layer, unmerged, with one active adapter, no variant (DoRA) and no bias on B."""
    from peft.tuners.lora.layer import Linear

    found = []
    for module in model.modules():
        if type(module) is not Linear or module.merged or module.disable_adapters:
            continue
        names = [n for n in module.active_adapters if n in module.lora_A]
        if len(names) == 1 and names[0] not in module.lora_variant and module.lora_B[names[0]].bias is None:
            found.append((module, names[0]))
    return found


class AdapterTrainingSteps(Callback):
    """How the adapter computes during training steps only; validation and evaluation see peft's own.

    ``bf16``: the adapter takes bf16 activations under Lightning's autocast. peft casts each adapter's
    input to the adapter weights' dtype (fp32) and the result back; under autocast that is a round trip
    for nothing, so the cast is switched off. ``lean``: plain LoRA layers use :func:`_lean_forward`."""

    def __init__(self, model: Any, *, bf16: bool, lean: bool):
        from peft.tuners.tuners_utils import BaseTunerLayer

        self.cast_layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)] if bf16 else []
        self.lean = lean_layers(model) if lean else []

    def _training(self, on: bool) -> None:
        for layer in self.cast_layers:
            layer.cast_input_dtype_enabled = not on
        for layer, name in self.lean:
            if on:
                layer.forward = partial(_lean_forward, layer, name)
            else:
                layer.__dict__.pop("forward", None)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._training(True)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._training(False)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._training(False)
