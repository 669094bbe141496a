"""Training speed levers are exact where they claim to be and switch back after training: eager attention
while training on the CPU (same loss and gradients as sdpa, the model's own kernel restored for evaluation)
the LoRA adapter's bf16 maths on a bf16 base (peft's input casts off only inside training steps), and the
lean adapter forward (peft's maths, its own forward back outside training steps)."""

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
from ftframe.engine.packing import KERNELS
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
    """A plugin whose Lightning callback records, in each training step, the attention kernel, whether
    peft casts adapter inputs and whether an adapter layer runs the lean forward."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool, bool]] = []

    @hookimpl
    def ftframe_lightning_callbacks(self, config):
        from lightning.pytorch.callbacks import Callback

        seen = self.seen

        class Record(Callback):
            def on_before_backward(self, trainer, pl_module, loss):
                from peft.tuners.tuners_utils import BaseTunerLayer

                layer = next(m for m in pl_module.model.modules() if isinstance(m, BaseTunerLayer))
                seen.append((pl_module.model.config._attn_implementation, layer.cast_input_dtype_enabled,
                             "forward" in vars(layer)))

        return [Record()]


def test_training_uses_the_levers_and_evaluation_gets_the_model_back(tmp_path, tiny_model_dir, data_path):
    recorder = StepRecorder()
    result = run_tiny(tmp_path / "run", tiny_run_overrides(tiny_model_dir, data_path, **{
        "backend.precision": "bf16-true", "eval.baseline": False, "exporters": "[]"}), plugins=[recorder])
    assert recorder.seen and set(recorder.seen) == {(KERNELS["eager"], False, True)}  # packed batches, eager inside
    assert result.metrics["train"]["packed_batches"] == result.metrics["train"]["steps"] > 0
    # Validation and test evaluation generate without autocast: they only work with peft's casts back on.
    assert result.status in ("succeeded", "gate_failed"), result
    assert result.metrics["train"]["precision"] == "bf16-true"


def test_each_adapter_lever_can_be_switched_off(tmp_path, tiny_model_dir, data_path):
    recorder = StepRecorder()
    run_tiny(tmp_path / "run", tiny_run_overrides(tiny_model_dir, data_path, **{
        "backend.precision": "bf16-true", "backend.adapter_compute": "fp32", "backend.lean_adapter": False,
        "backend.attention": "sdpa", "backend.packing": False, "eval.baseline": False, "exporters": "[]"}),
        plugins=[recorder])
    assert recorder.seen and set(recorder.seen) == {("sdpa", True, False)}


def test_switching_the_attention_kernel_returns_the_previous_one(tiny_model_dir):
    from ftframe.engine.predict import switch_attention

    model = lora_model(tiny_model_dir)
    assert switch_attention(model, "eager") == "sdpa"
    assert model.config._attn_implementation == "eager"
    assert switch_attention(model, "sdpa") == "eager"
    assert model.config._attn_implementation == "sdpa"
    assert switch_attention(torch.nn.Linear(2, 2), "eager") is None  # not a transformers model: untouched


def bf16_lora(model_dir: Path, **lora) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    return get_peft_model(base, LoraConfig(target_modules="all-linear", init_lora_weights=False, **lora),
                          autocast_adapter_dtype=True)


def test_bf16_adapter_maths_stays_close_to_fp32_adapter_maths(tiny_model_dir):
    from ftframe_backends.lora_steps import AdapterTrainingSteps

    model, batch = bf16_lora(tiny_model_dir, r=4, lora_alpha=8), padded_batch()
    fp32_loss, fp32_grads = loss_and_grads(model, batch, True)
    steps = AdapterTrainingSteps(model, bf16=True, lean=False)
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
    assert steps.cast_layers and all(layer.cast_input_dtype_enabled for layer in steps.cast_layers)
    with torch.no_grad():
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])


@pytest.mark.parametrize("alpha, bf16", [(8, False), (8, True), (6, False)])
def test_the_lean_adapter_forward_gives_peft_loss_and_gradients(tiny_model_dir, alpha, bf16):
    """scaling = alpha / r: 2 (a power of two: the same bits), or 1.5 (the same maths, rounded apart)."""
    from ftframe_backends.lora_steps import AdapterTrainingSteps

    model, batch = bf16_lora(tiny_model_dir, r=4, lora_alpha=alpha), padded_batch()

    def step(lean: bool) -> tuple[float, dict]:
        steps = AdapterTrainingSteps(model, bf16=bf16, lean=lean)
        steps.on_train_batch_start(None, None, batch, 0)
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return loss_and_grads(model, batch, True)
        finally:
            steps.on_train_batch_end(None, None, None, batch, 0)

    peft_loss, peft_grads = step(lean=False)
    lean_loss, lean_grads = step(lean=True)
    exact = alpha == 8
    assert lean_loss == peft_loss if exact else lean_loss == pytest.approx(peft_loss, rel=1e-5)
    for name, grad in peft_grads.items():
        if exact:
            assert torch.equal(lean_grads[name], grad), name
        else:
            assert torch.allclose(lean_grads[name], grad, rtol=1e-4, atol=1e-6), name
    assert not any("forward" in vars(m) for m in model.modules())  # peft's forward is back


def test_the_lean_forward_leaves_dora_and_merged_layers_to_peft(tiny_model_dir):
    from ftframe_backends.lora_steps import AdapterTrainingSteps, lean_layers

    plain = bf16_lora(tiny_model_dir, r=4, lora_alpha=8)
    assert len(lean_layers(plain)) == sum(1 for m in plain.modules() if type(m).__name__ == "Linear"
                                          and hasattr(m, "lora_A"))
    plain.merge_adapter()
    assert lean_layers(plain) == []
    plain.unmerge_adapter()
    assert lean_layers(bf16_lora(tiny_model_dir, r=4, lora_alpha=8, use_dora=True)) == []
    steps = AdapterTrainingSteps(plain, bf16=False, lean=True)
    steps.on_train_batch_start(None, None, None, 0)
    steps.on_exception(None, None, RuntimeError("step failed"))
    assert not any("forward" in vars(m) for m in plain.modules())


def test_the_lean_forward_honours_disabled_adapters(tiny_model_dir):
    """DPO's reference pass disables the adapter inside the training step: it must see the base model."""
    from ftframe_backends.lora_steps import AdapterTrainingSteps

    model, batch = bf16_lora(tiny_model_dir, r=4, lora_alpha=8), padded_batch()
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        with model.disable_adapter():
            base = model(**inputs).logits
        tuned = model(**inputs).logits
        steps = AdapterTrainingSteps(model, bf16=False, lean=True)
        steps.on_train_batch_start(None, None, batch, 0)
        try:
            with model.disable_adapter():
                lean_base = model(**inputs).logits
            lean_tuned = model(**inputs).logits
        finally:
            steps.on_train_batch_end(None, None, None, batch, 0)
    assert not torch.equal(base, tuned)  # the adapter changes the answer (B is not zero here)
    assert torch.equal(lean_base, base) and torch.equal(lean_tuned, tuned)
