"""Training speed levers are exact where they claim to be and switch back after training: eager attention
while training on the CPU (same loss and gradients as sdpa, the model's own kernel restored for evaluation)
and the LoRA adapter's bf16 maths on a bf16 base (peft's input casts off only inside training steps)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from ftframe import hookimpl
from ftframe.engine.chat import Encoded
from ftframe.engine.data import collate
from ftframe.engine.hparams import EAGER_MAX_TOKENS, TrainHyperparams
from ftframe.engine.module import causal_lm_loss
from ftframe.errors import ConfigError
from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl


@pytest.fixture(scope="module")
def data_path(tmp_path_factory) -> Path:
    return write_chat_jsonl(tmp_path_factory.mktemp("data") / "toy.jsonl", toy_classification_rows(8), system="Classify.")


def padded_batch() -> dict[str, torch.Tensor]:
    """Three rows of different lengths (right padding), loss on the last tokens of each."""
    g = torch.Generator().manual_seed(0)
    items = []
    for n in (9, 5, 7):
        ids = torch.randint(3, 60, (n,), generator=g).tolist()
        items.append(Encoded(ids, [-100] * (n - 3) + ids[-3:]))
    return collate(items, pad_id=0)


def lora_model(model_dir: Path) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa")
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    model.train()
    return model


def loss_and_grads(model: torch.nn.Module, batch: dict[str, torch.Tensor], fast_head: bool) -> tuple[float, dict]:
    model.zero_grad()
    loss, _ = causal_lm_loss(model, batch, fast_head=fast_head)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("fast_head", [True, False])
def test_eager_attention_gives_the_sdpa_loss_and_gradients_on_a_padded_batch(tiny_model_dir, fast_head):
    model, batch = lora_model(tiny_model_dir), padded_batch()
    assert int(batch["attention_mask"].sum()) < batch["attention_mask"].numel()  # there is padding
    sdpa_loss, sdpa_grads = loss_and_grads(model, batch, fast_head)
    model.set_attn_implementation("eager")
    eager_loss, eager_grads = loss_and_grads(model, batch, fast_head)
    assert eager_loss == pytest.approx(sdpa_loss, rel=1e-5)
    assert sdpa_grads.keys() == eager_grads.keys() and sdpa_grads
    for name, grad in sdpa_grads.items():
        torch.testing.assert_close(eager_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_attention_auto_is_eager_for_short_rows_on_the_cpu_only(registry):
    hp = TrainHyperparams()
    assert hp.training_attention("cpu", EAGER_MAX_TOKENS) == "eager"
    assert hp.training_attention("cpu", EAGER_MAX_TOKENS + 1) == "sdpa"
    assert hp.training_attention("cuda", 16) == "sdpa"
    assert TrainHyperparams(attention="sdpa").training_attention("cpu", 16) == "sdpa"
    assert TrainHyperparams(attention="eager").training_attention("cuda", 4096) == "eager"
    with pytest.raises(ConfigError, match=r"backend\.attention"):
        registry.create("backend", "lora", {"attention": "flash"})


def test_adapter_compute_resolution_and_errors(registry):
    def backend(name: str = "lora", **options):
        return registry.create("backend", name, options).config

    bf16 = backend(precision="bf16-true")
    assert bf16.resolved_adapter_compute() == "bf16" and bf16.lightning_precision() == "bf16-mixed"
    assert backend(precision="bf16-true", adapter_compute="fp32").lightning_precision() == "32-true"
    assert backend(precision="fp32").resolved_adapter_compute() == "fp32"
    assert backend(precision="bf16-true", head="classifier").resolved_adapter_compute() == "fp32"
    assert backend("qlora", precision="bf16-true").resolved_adapter_compute() == "fp32"
    with pytest.raises(ConfigError, match=r"backend\.adapter_compute=bf16 needs the base held in bf16"):
        backend(precision="fp32", adapter_compute="bf16")
    with pytest.raises(ConfigError, match=r"backend\.adapter_compute=bf16 is not supported"):
        backend("qlora", adapter_compute="bf16")
    with pytest.raises(ConfigError, match=r"backend\.adapter_compute"):
        backend(adapter_compute="fp16")


class StepRecorder:
    """A plugin whose Lightning callback records, in each training step, the attention kernel and whether
    peft casts adapter inputs."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    @hookimpl
    def ftframe_lightning_callbacks(self, config):
        from lightning.pytorch.callbacks import Callback

        seen = self.seen

        class Record(Callback):
            def on_before_backward(self, trainer, pl_module, loss):
                from peft.tuners.tuners_utils import BaseTunerLayer

                layer = next(m for m in pl_module.model.modules() if isinstance(m, BaseTunerLayer))
                seen.append((pl_module.model.config._attn_implementation, layer.cast_input_dtype_enabled))

        return [Record()]


def test_training_uses_the_levers_and_evaluation_gets_the_model_back(tmp_path, tiny_model_dir, data_path):
    recorder = StepRecorder()
    result = run_tiny(tmp_path / "run", tiny_run_overrides(tiny_model_dir, data_path, **{
        "backend.precision": "bf16-true", "eval.baseline": False, "exporters": "[]"}), plugins=[recorder])
    assert recorder.seen and set(recorder.seen) == {("eager", False)}
    # Validation and test evaluation generate without autocast: they only work with peft's casts back on.
    assert result.status in ("succeeded", "gate_failed"), result
    assert result.metrics["train"]["precision"] == "bf16-true"


def test_switching_the_attention_kernel_returns_the_previous_one(tiny_model_dir):
    from ftframe.engine.fit import _switch_attention

    model = lora_model(tiny_model_dir)
    assert _switch_attention(model, "eager") == "sdpa"
    assert model.config._attn_implementation == "eager"
    assert _switch_attention(model, "sdpa") == "eager"
    assert model.config._attn_implementation == "sdpa"
    assert _switch_attention(torch.nn.Linear(2, 2), "eager") is None  # not a transformers model: untouched


def test_bf16_adapter_maths_stays_close_to_fp32_adapter_maths(tiny_model_dir):
    from ftframe_backends.lora import Bf16AdapterSteps
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False),
                           autocast_adapter_dtype=True)
    batch = padded_batch()
    fp32_loss, fp32_grads = loss_and_grads(model, batch, True)
    steps = Bf16AdapterSteps(model)
    steps.on_train_batch_start(None, None, batch, 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_loss, bf16_grads = loss_and_grads(model, batch, True)
    steps.on_train_batch_end(None, None, None, batch, 0)
    assert bf16_loss == pytest.approx(fp32_loss, rel=2e-2)
    for name, grad in fp32_grads.items():
        assert bf16_grads[name].dtype == torch.float32  # gradients land on the fp32 adapter weights
        cos = torch.nn.functional.cosine_similarity(bf16_grads[name].flatten(), grad.flatten(), dim=0)
        assert cos > 0.98, name
    # Outside training steps peft casts again, so a model without autocast still runs.
    assert all(layer.cast_input_dtype_enabled for layer in steps.layers)
    with torch.no_grad():
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])

