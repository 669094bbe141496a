"""QLoRA: LoRA adapters on a 4-bit (NF4) base quantised by bitsandbytes (Dettmers et al. 2023).

The base is reloaded from the model source's Hugging Face folder through transformers'
``BitsAndBytesConfig`` and prepared with peft's ``prepare_model_for_kbit_training``; the adapter is the
``lora`` backend's. bitsandbytes >= 0.48 runs 4-bit layers on the CPU too (slowly: every matmul
dequantises its weight); on CUDA it is the memory saver it is known as. The baseline is evaluated on
the same 4-bit base the adapter is trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ftframe.api import LoadedModel
from ftframe.config import one_of
from ftframe.engine import TrainJob
from ftframe.errors import ConfigError
from ftframe_backends.lora import LoraBackend, LoraConfig

QUANT_TYPES = ("nf4", "fp4")


@dataclass
class QloraConfig(LoraConfig):
    quant_type: str = "nf4"
    """4-bit data type of the frozen base: ``nf4`` (NormalFloat, for normally distributed weights) or ``fp4``."""
    double_quant: bool = True
    """Quantise the quantisation constants too (saves ~0.4 bits per parameter)."""
    bf16_adapter_compute: ClassVar[bool] = False  # the 4-bit layers choose their own compute dtype

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("backend.quant_type", self.quant_type, QUANT_TYPES)


def bitsandbytes_problem() -> str | None:
    """Why 4-bit layers cannot run here, or None when they can (checked with a tiny 4-bit matmul)."""
    try:
        import bitsandbytes as bnb
        import torch
    except ImportError as exc:
        return f"bitsandbytes is not installed ({exc}); pip install 'bitsandbytes>=0.48'"
    try:
        layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.float32, quant_type="nf4")
        layer.weight = bnb.nn.Params4bit(torch.randn(64, 64), requires_grad=False, quant_type="nf4")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        layer.to(device)(torch.randn(2, 64, device=device))
    except Exception as exc:  # noqa: BLE001 - any failure means the same thing to the user
        return f"bitsandbytes {bnb.__version__} cannot run a 4-bit layer on this machine: {type(exc).__name__}: {exc}"
    return None


class QloraBackend(LoraBackend):
    """LoRA on a 4-bit NF4 base (bitsandbytes): the base costs ~0.5 byte per parameter."""

    name = "qlora"
    Config = QloraConfig
    label = "QLoRA"
    classifier_head = False
    memory_hints = ()

    def __init__(self, config: Any = None):
        super().__init__(config)
        self._quantised: LoadedModel | None = None

    def compute_dtype(self) -> Any:
        import torch

        return torch.bfloat16 if self.precision() == "bf16-true" else torch.float32

    def load(self, job: TrainJob) -> LoadedModel:
        """The 4-bit base (once per job; the baseline and training share it)."""
        if self._quantised is not None:
            return self._quantised
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        problem = bitsandbytes_problem()
        if problem:
            raise ConfigError(f"backend=qlora: {problem}. Use backend=lora instead.")
        plain = job.load_model(self.load_dtype())
        path = plain.path
        if path is None or not (Path(path) / "config.json").is_file():
            raise ConfigError(f"backend=qlora needs a model source that provides a Hugging Face model folder "
                              f"(config.json + safetensors); {job.config.model.name!r} gave {path}. "
                              f"Use backend=lora with this model.")
        tokenizer, name = plain.tokenizer, plain.name
        job.release_model()  # the full-precision copy is not needed any more
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=self.config.quant_type,
                                   bnb_4bit_use_double_quant=self.config.double_quant,
                                   bnb_4bit_compute_dtype=self.compute_dtype())
        import torch

        device = "cuda" if torch.cuda.is_available() and str(job.trainer_config.accelerator) in ("gpu", "cuda", "auto") else "cpu"
        model = AutoModelForCausalLM.from_pretrained(path, quantization_config=quant, dtype=self.compute_dtype(),
                                                     device_map={"": device})
        model.eval()
        self._quantised = LoadedModel(model, tokenizer, name=f"{name} (4-bit {self.config.quant_type})", path=path,
                                      info={"quantisation": quant.to_dict()})
        return self._quantised

    def prepare(self, loaded: LoadedModel) -> Any:
        from peft import get_peft_model, prepare_model_for_kbit_training

        # Casts the non-quantised weights (norms, embeddings) to fp32 and sets up gradient checkpointing.
        model = prepare_model_for_kbit_training(loaded.model, use_gradient_checkpointing=self.config.gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
        return get_peft_model(model, self.peft_config(model), autocast_adapter_dtype=True)
