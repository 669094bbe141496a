"""LoRA backend options: layer subsets, precision resolution, option errors."""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM

from ftframe.engine.hparams import TrainHyperparams, hardware_bf16, resolve_precision
from ftframe.errors import ConfigError
from ftframe.plugins import Registry


def lora(registry: Registry, **options):
    return registry.create("backend", "lora", options)


def test_last_layers_adapts_only_the_top_layers(registry, tiny_model_dir):
    from peft import get_peft_model

    backend = lora(registry, last_layers=1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(model, backend.peft_config(model))
    adapted = {n.split(".layers.")[1].split(".")[0] for n, p in peft_model.named_parameters() if "lora_" in n}
    assert adapted == {str(model.config.num_hidden_layers - 1)}
    kinds = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, p in peft_model.named_parameters() if "lora_A" in n}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_layer_options_are_checked(registry):
    with pytest.raises(ConfigError, match="exclusive"):
        lora(registry, layers=[0], last_layers=1)
    with pytest.raises(ConfigError, match="backend.last_layers"):
        lora(registry, last_layers=0)
    with pytest.raises(ConfigError, match="backend.precision"):
        lora(registry, precision="fp8")
    with pytest.raises(ConfigError, match="backend.scheduler"):
        lora(registry, scheduler="cosin")


def test_precision_auto_follows_the_hardware():
    assert resolve_precision("auto") == ("bf16-true" if hardware_bf16() else "fp32")
    assert resolve_precision("bf16-mixed") == "bf16-mixed"
    # bf16-true is realised by load dtypes, so Lightning itself must not cast the trained weights.
    assert TrainHyperparams(precision="bf16-true").lightning_precision() == "32-true"
    assert TrainHyperparams(precision="bf16-mixed").lightning_precision() == "bf16-mixed"
