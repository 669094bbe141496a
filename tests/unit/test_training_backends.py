"""Local backends on the tiny model: LoRA dtypes and options, QLoRA's 4-bit path, full fine-tuning with
frozen and progressively unfrozen layers, DPO's loss and rewards, shared hyperparameters, memory preflight."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from ftframe_backends.full import FullBackend
from transformers import AutoModelForCausalLM

from ftframe.engine.memory import estimate, preflight
from ftframe.errors import ConfigError, DataError, InsufficientMemory
from ftframe.testing import (
    run_tiny,
    tiny_model,
    tiny_run_overrides,
    toy_classification_rows,
    write_chat_jsonl,
)


def epoch_values(run_dir: Path, column: str) -> list[float]:
    with (run_dir / "logs" / "csv" / "metrics.csv").open() as f:
        return [float(r[column]) for r in csv.DictReader(f) if r.get(column)]


@pytest.fixture(scope="module")
def data_path(tmp_path_factory) -> Path:
    return write_chat_jsonl(tmp_path_factory.mktemp("data") / "toy.jsonl", toy_classification_rows(8), system="Classify.")


@pytest.fixture(scope="module")
def wide_model_dir(tmp_path_factory) -> Path:
    """bitsandbytes' CPU 4-bit inference kernel needs layers of at least 64 features."""
    return tiny_model(tmp_path_factory.mktemp("wide") / "model", hidden_size=64)


@pytest.fixture(scope="module")
def deep_model_dir(tmp_path_factory) -> Path:
    """A 4-layer tiny model, so layer freezing has layers to choose from."""
    return tiny_model(tmp_path_factory.mktemp("deep") / "model", layers=4)


def overrides(model_dir, data, backend: str, **extra) -> list[str]:
    base = tiny_run_overrides(model_dir, data, **{"backend": backend, "eval.baseline": False, "exporters": "[]", **extra})
    if backend == "full":
        base = [o for o in base if not o.startswith(("backend.r=", "backend.alpha="))]
    return base


# ----------------------------------------------------------------------------------------------- lora
def test_lora_defaults_all_linear_adapters_fp32_on_a_bf16_base(registry, tiny_model_dir):
    backend = registry.create("backend", "lora", {"precision": "bf16-true"})
    assert backend.config.target_modules == "all-linear"
    assert backend.load_dtype() == "bf16"
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    from ftframe.api import LoadedModel

    model = backend.prepare(LoadedModel(base, None, "tiny"))
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    assert {p.dtype for p in trained.values()} == {torch.float32}
    assert {p.dtype for p in frozen.values()} == {torch.bfloat16}
    kinds = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n in trained if "lora_A" in n}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}  # not lm_head


def test_dora_adds_trained_magnitudes(registry, tiny_model_dir):
    from ftframe.api import LoadedModel

    backend = registry.create("backend", "lora", {"use_dora": True, "target_modules": ["q_proj", "v_proj"]})
    model = backend.prepare(LoadedModel(AutoModelForCausalLM.from_pretrained(tiny_model_dir), None, "tiny"))
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_magnitude_vector" in n for n in names)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names} == {"q_proj", "v_proj"}


@pytest.mark.parametrize(("option", "value", "key"), [
    ("epochs", 0, "backend.epochs"), ("batch_size", 0, "backend.batch_size"), ("dropout", 1.5, "backend.dropout"),
    ("lr", -1, "backend.lr"), ("scheduler", "cosin", "backend.scheduler"), ("precision", "fp8", "backend.precision"),
    ("memory_check", "maybe", "backend.memory_check"), ("label_smoothing", 1.0, "backend.label_smoothing"),
])
def test_every_backend_checks_the_shared_hyperparameters(registry, option, value, key):
    for name in ("lora", "qlora", "full", "dpo", "ipo", "simpo", "orpo", "kto"):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            registry.create("backend", name, {option: value})


def test_backend_specific_options_are_checked(registry):
    with pytest.raises(ConfigError, match="backend.quant_type"):
        registry.create("backend", "qlora", {"quant_type": "int3"})
    with pytest.raises(ConfigError, match="backend.beta"):
        registry.create("backend", "dpo", {"beta": 0})
    with pytest.raises(ConfigError, match="backend.freeze_layers"):
        registry.create("backend", "full", {"unfreeze_per_epoch": 1})


def test_lora_run_with_seed_dropout_and_gradient_checkpointing(tmp_path, tiny_model_dir, data_path):
    result = run_tiny(tmp_path / "run", overrides(tiny_model_dir, data_path, "lora", **{
        "backend.seed": 7, "backend.dropout": 0.1, "backend.gradient_checkpointing": True,
        "backend.scheduler": "linear", "backend.warmup_steps": 1, "backend.weight_decay": 0.01,
        "backend.label_smoothing": 0.1, "backend.grad_accum": 2, "backend.precision": "fp32"}))
    assert result.status == "succeeded"
    train = result.metrics["train"]
    assert train["steps"] == 2  # 8 examples / batch 4 / grad_accum 2, two epochs
    assert train["memory"]["needed"] > 0 and train["ranks"][0]["batches"] == 4


# ---------------------------------------------------------------------------------------------- qlora
def test_qlora_trains_a_4bit_base_and_the_loss_falls(tmp_path, wide_model_dir, data_path):
    pytest.importorskip("bitsandbytes")
    result = run_tiny(tmp_path / "run", overrides(wide_model_dir, data_path, "qlora", **{
        "backend.epochs": 6, "backend.lr": 0.02, "backend.early_stopping_patience": "null",
        "exporters": "[adapter]"}))
    assert result.status == "succeeded", result.error
    assert result.metrics["train"]["base_model"].endswith("(4-bit nf4)")
    losses = epoch_values(tmp_path / "run", "train/loss_epoch")
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0]
    assert result.exports["adapter"]["verified"] is True


def test_qlora_base_is_4bit_with_fp32_adapters(registry, tmp_path, wide_model_dir, data_path):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    from ftframe.engine import TrainJob
    from ftframe.testing import compose

    cfg = compose(overrides(wide_model_dir, data_path, "qlora"))
    backend = registry.create("backend", "qlora", cfg.backend)
    job = TrainJob(config=cfg, model_source=registry.create("model_source", "hf_local", cfg.model), train=[], val=[],
                   task=None, metrics={}, run_dir=tmp_path, seed=0, trainer_config=cfg.trainer,
                   eval_config=cfg.eval, pm=None)
    model = backend.prepare(backend.load(job))
    quantised = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantised) == 7 * 2  # every decoder Linear of both layers
    assert all(m.weight.dtype == torch.uint8 for m in quantised)
    assert {p.dtype for n, p in model.named_parameters() if p.requires_grad} == {torch.float32}


# ----------------------------------------------------------------------------------------------- full
def test_full_freezes_the_first_layers(tmp_path, deep_model_dir, data_path):
    before = AutoModelForCausalLM.from_pretrained(deep_model_dir).state_dict()
    result = run_tiny(tmp_path / "run", overrides(deep_model_dir, data_path, "full", **{
        "backend.freeze_layers": 2, "backend.precision": "fp32", "backend.lr": 0.01, "exporters": "[merged]"}))
    assert result.status == "succeeded", result.error
    from safetensors.torch import load_file

    after = load_file(next((tmp_path / "run" / "merged").glob("*.safetensors")))
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.up_proj.weight"):
        assert torch.equal(before[name], after[name]), f"{name} is frozen"
    for name in ("model.layers.2.self_attn.q_proj.weight", "model.layers.3.mlp.up_proj.weight"):
        assert not torch.equal(before[name], after[name]), f"{name} is trained"
    assert result.metrics["train"]["trainable_params"] < result.metrics["train"]["total_params"]


def test_progressive_unfreezing_schedule(deep_model_dir):
    from ftframe_backends.unfreezing import ProgressiveUnfreezing

    model = AutoModelForCausalLM.from_pretrained(deep_model_dir)
    layers = list(model.model.layers)
    cb = ProgressiveUnfreezing(layers[:3], per_epoch=2, weight_decay=0.0)
    assert cb.due(0) == [] and cb.due(1) == layers[1:3] and cb.due(2) == layers[0:1] and cb.due(3) == []


def test_progressive_unfreezing_trains_unfrozen_layers_on_schedule(tmp_path, deep_model_dir, data_path):
    # 3 of 4 layers frozen; one more unfrozen per epoch from epoch 1: layer 2, then 1; layer 0 never.
    before = AutoModelForCausalLM.from_pretrained(deep_model_dir).state_dict()
    result = run_tiny(tmp_path / "run", overrides(deep_model_dir, data_path, "full", **{
        "backend.freeze_layers": 3, "backend.unfreeze_per_epoch": 1, "backend.epochs": 3, "backend.precision": "fp32",
        "backend.lr": 0.01, "backend.early_stopping_patience": "null", "exporters": "[merged]",
        "backend.warmup_ratio": 0.0, "backend.scheduler": "constant"}))
    assert result.status == "succeeded", result.error
    from safetensors.torch import load_file

    after = load_file(next((tmp_path / "run" / "merged").glob("*.safetensors")))
    changed = {i for i in range(4) if not torch.equal(before[f"model.layers.{i}.mlp.up_proj.weight"],
                                                       after[f"model.layers.{i}.mlp.up_proj.weight"])}
    best_epoch = torch.load(result.metrics["train"]["best_checkpoint"], weights_only=False)["epoch"]
    # Checkpoints keep the scheduled layers, so restoring the best epoch also restores what it had unfrozen.
    assert changed == {3} | {3 - k for k in range(1, best_epoch + 1)}
    assert 0 not in changed


# ------------------------------------------------------------------------------------------------ dpo
def test_dpo_loss_matches_the_definition():
    from ftframe_backends.preference_losses import dpo_loss

    zero = torch.zeros(3)
    loss, stats = dpo_loss(zero, zero, zero, zero, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2))  # policy == reference: no preference yet
    pc, pr = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.0])
    rc, rr = torch.tensor([-2.0, -2.0]), torch.tensor([-2.0, -2.0])
    loss, stats = dpo_loss(pc, pr, rc, rr, beta=0.5)
    logits = torch.tensor([2.0, -1.0])  # (pc - pr) - (rc - rr)
    assert loss.item() == pytest.approx(float(-torch.nn.functional.logsigmoid(0.5 * logits).mean()))
    assert stats["reward_accuracy"].item() == 0.5
    assert stats["reward_margin"].item() == pytest.approx(0.5 * 0.5)  # mean of beta * logits
    smoothed, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, label_smoothing=0.2)
    assert smoothed.item() > loss.item()


@pytest.fixture(scope="module")
def pref_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pref") / "pref.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for user, label in toy_classification_rows(8):
            other = "technical" if label == "billing" else "billing"
            f.write(json.dumps({"messages": [{"role": "system", "content": "Classify."}, {"role": "user", "content": user}],
                                "chosen": {"role": "assistant", "content": label},
                                "rejected": {"role": "assistant", "content": other}}) + "\n")
    return path


def test_dpo_learns_the_preferences(tmp_path, tiny_model_dir, pref_path):
    result = run_tiny(tmp_path / "run", overrides(tiny_model_dir, pref_path, "dpo", **{
        "backend.epochs": 3, "backend.lr": 0.02, "backend.beta": 0.5, "backend.early_stopping_patience": "null",
        "task.type": "generation", "metrics": "[exact_match]", "task.primary_metric": "exact_match",
        "exporters": "[adapter]"}))
    assert result.status == "succeeded", result.error
    run_dir = tmp_path / "run"
    losses = epoch_values(run_dir, "train/loss_epoch")
    assert losses[0] == pytest.approx(math.log(2), abs=1e-3)  # the adapter starts as a no-op: policy == reference
    assert losses[-1] < 0.3
    assert epoch_values(run_dir, "val/reward_accuracy")[-1] == 1.0
    assert epoch_values(run_dir, "val/reward_margin")[-1] > 0
    assert result.metrics["train"]["monitor"] == "val/loss"
    assert result.metrics["train"]["packed_batches"] == 0  # the loss sums each row: padded batches
    # Evaluation went through the same predictor path as every backend.
    assert (run_dir / "predictions.jsonl").is_file() and result.exports["adapter"]["verified"] is True


def test_dpo_rejects_examples_without_pairs(tmp_path, tiny_model_dir, data_path):
    with pytest.raises(DataError, match="backend=dpo needs preference pairs"):
        run_tiny(tmp_path / "run", overrides(tiny_model_dir, data_path, "dpo"))


# ------------------------------------------------------------------------------------ memory preflight
def test_memory_estimate_follows_the_backend_choices(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    full = estimate(model, batch_size=8, seq_len=256, gradient_checkpointing=False, available=1 << 40)
    assert full.optimizer == 2 * full.gradients == 8 * sum(p.numel() for p in model.parameters())
    checkpointed = estimate(model, batch_size=8, seq_len=256, gradient_checkpointing=True, available=1 << 40)
    assert checkpointed.activations < full.activations
    bigger = estimate(model, batch_size=16, seq_len=256, gradient_checkpointing=False, available=1 << 40)
    assert bigger.activations > full.activations
    for p in model.parameters():
        p.requires_grad_(False)
    model.model.layers[-1].mlp.down_proj.weight.requires_grad_(True)
    top_only = estimate(model, batch_size=8, seq_len=256, gradient_checkpointing=False, available=1 << 40)
    assert top_only.gradients < full.gradients and top_only.activations < full.activations


def test_memory_preflight_refuses_with_advice(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    shape = {"hints": FullBackend.memory_hints, "batch_size": 8, "seq_len": 512, "gradient_checkpointing": False}
    with pytest.raises(InsufficientMemory) as err:
        preflight(model, mode="error", available_gb=0.0001, **shape)
    text = str(err.value)
    for hint in ("backend=qlora", "backend.batch_size=4", "backend.gradient_checkpointing=true",
                 "backend.memory_check=warn"):
        assert hint in text
    warned = []
    assert preflight(model, mode="warn", available_gb=0.0001, warn=warned.append, **shape) is not None and warned
    assert preflight(model, mode="off", **shape) is None


def test_a_run_that_cannot_fit_stops_before_training(tmp_path, tiny_model_dir, data_path):
    with pytest.raises(InsufficientMemory, match="will not fit"):
        run_tiny(tmp_path / "run", overrides(tiny_model_dir, data_path, "lora", **{"backend.memory_available_gb": 1e-5}))
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "InsufficientMemory" in manifest["error"]
    assert not (tmp_path / "run" / "checkpoints").exists()
