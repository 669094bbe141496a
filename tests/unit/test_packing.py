"""Packed training batches (``backend.packing``): the layout, exactness against the padded batch (loss and
gradients, eager and sdpa, every supported architecture), no attention across rows, and the fallbacks."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from ftframe.engine.chat import Encoded
from ftframe.engine.data import collate
from ftframe.engine.module import batch_tokens, causal_lm_loss, trained_logits
from ftframe.engine.packing import (
    KERNELS,
    pack,
    packing_problem,
    register_kernels,
    shared_prefix,
    unpacked_attention,
)
from ftframe.engine.predict import switch_attention
from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl

PREFIX = [5, 6, 7, 8, 9]


def items(prefix: list[int], rows: list[tuple[int, int]], seed: int = 0) -> list[Encoded]:
    """Rows of ``prefix`` + ``n`` random prompt tokens + ``k`` trained reply tokens, for each ``(n, k)``."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n, k in rows:
        ids = prefix + torch.randint(10, 60, (n + k,), generator=g).tolist()
        out.append(Encoded(ids, [-100] * (len(prefix) + n) + ids[-k:]))
    return out


def lora(model_dir: Path | None = None, model: torch.nn.Module | None = None) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = model if model is not None else AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager")
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    peft_model.train()
    return peft_model


def loss_and_grads(model: torch.nn.Module, batch: dict, fast_head: bool = True) -> tuple[float, int, dict[str, torch.Tensor]]:
    model.zero_grad()
    loss, n = causal_lm_loss(model, batch, fast_head=fast_head)
    loss.backward()
    return float(loss.detach()), n, {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}


def assert_same_training(model: torch.nn.Module, padded: dict, packed: dict, inner: str, fast_head: bool = True,
                         rel: float = 1e-5, grad_rtol: float = 1e-4) -> None:
    register_kernels()
    switch_attention(model, inner)
    loss, n, grads = loss_and_grads(model, padded, fast_head)
    switch_attention(model, KERNELS[inner])
    packed_loss, packed_n, packed_grads = loss_and_grads(model, packed, fast_head)
    assert packed_n == n > 0
    assert packed_loss == pytest.approx(loss, rel=rel)
    assert grads.keys() == packed_grads.keys() and grads
    for name, grad in grads.items():
        assert grad.abs().sum() > 0, name  # every adapter weight takes part
        # atol scales with the tensor: fp32 sums in another order differ by ~1e-6 of the largest entry (seen on
        # AVX2-only CPUs), which a fixed atol of 1e-6 failed on entries near zero; a masking error is ~1e-2.
        atol = grad_rtol * 1e-1 * float(grad.abs().max())
        torch.testing.assert_close(packed_grads[name], grad, rtol=grad_rtol, atol=atol, msg=name)


# ------------------------------------------------------------------------------------------ layout
def test_the_layout_shares_the_prefix_and_keeps_every_row_token():
    batch = collate(items(PREFIX, [(3, 2), (6, 1), (1, 3)]), pad_id=0)
    packed = pack(batch, min_saving=0)
    rows = packed["packed"]
    assert rows.prefix == len(PREFIX)  # the random prompt tokens differ at once (seeded)
    lengths = batch["attention_mask"].sum(1).tolist()
    assert packed["input_ids"].shape == (1, 5 + sum(n - 5 for n in lengths))
    assert batch_tokens(packed) == batch_tokens(batch) == sum(lengths)
    # each row's own tokens follow, in order, at the positions they had in their padded row
    start = 5
    for i, n in enumerate(lengths):
        own = packed["input_ids"][0, start:start + n - 5]
        assert own.tolist() == batch["input_ids"][i, 5:n].tolist()
        assert packed["position_ids"][0, start:start + n - 5].tolist() == list(range(5, n))
        assert rows.queries[i, :n - 5].tolist() == list(range(start, start + n - 5))
        start += n - 5
    # the trained targets are the padded batch's, in row order
    assert packed["labels"][0, 1:][packed["labels"][0, 1:] != -100].tolist() == \
        batch["labels"][:, 1:][batch["labels"][:, 1:] != -100].tolist()
    # row 1 sees the prefix and itself (causally), never row 0 or row 2
    sees = rows.sees[1, 0]
    assert sees[:, :5].all()
    assert torch.equal(sees[:6, 5:5 + 6], torch.ones(6, 6, dtype=torch.bool).tril()[:6, :6])


def test_the_prefix_ends_before_the_first_trained_token():
    # two rows that share everything up to and including their replies' first token
    same = [Encoded([1, 2, 3, 4, 5, 6], [-100, -100, -100, 4, 5, 6]), Encoded([1, 2, 3, 4, 5, 7], [-100, -100, -100, 4, 5, 7])]
    batch = collate(same, pad_id=0)
    assert shared_prefix(batch) == 2  # position 2 predicts the trained token 4: it must stay per row
    packed = pack(batch, min_saving=0)
    assert packed["packed"].prefix == 2
    assert packed["labels"][0, 1:][packed["labels"][0, 1:] != -100].tolist() == [4, 5, 6, 4, 5, 7]


def test_a_row_first_token_is_never_a_target_of_the_row_before():
    # fully trained rows (no prompt), nothing shared: row 1's first token must not be predicted from row 0
    rows = [Encoded([11, 12, 13], [11, 12, 13]), Encoded([21, 22, 23, 24, 25, 26, 27], [21, 22, 23, 24, 25, 26, 27])]
    batch = collate(rows, pad_id=0)
    packed = pack(batch, min_saving=0)
    assert packed["packed"].prefix == 0
    assert packed["labels"][0].tolist() == [-100, 12, 13, -100, 22, 23, 24, 25, 26, 27]


def test_a_batch_with_entries_of_its_own_stays_padded():
    batch = collate(items(PREFIX * 4, [(2, 1), (2, 1)]), pad_id=0)
    assert "packed" in pack(batch)
    assert "packed" not in pack({**batch, "pair_index": torch.arange(2)})  # an objective's own collate
    per_row = {**batch, "labels": torch.tensor([0, 1])}  # the same keys, but a label per row (a classifier's)
    assert "packed" not in pack(per_row) and batch_tokens(pack(per_row)) == batch_tokens(pack(batch))


def test_batches_that_would_save_little_stay_padded():
    even = collate(items([], [(6, 2), (6, 2)]), pad_id=0)  # nothing shared, no padding
    assert "packed" not in pack(even) and batch_tokens(pack(even)) == 16
    single = collate(items(PREFIX, [(4, 2)]), pad_id=0)
    assert "packed" not in pack(single, min_saving=0)
    shared = collate(items(PREFIX * 4, [(2, 1), (2, 1)]), pad_id=0)  # 20 of 23 tokens shared
    assert "packed" in pack(shared)


# ------------------------------------------------------------------------------------ exactness
@pytest.mark.parametrize("inner", ["eager", "sdpa"])
@pytest.mark.parametrize("prefix", [PREFIX, []], ids=["shared-prefix", "padding-only"])
def test_packed_training_gives_the_padded_loss_and_gradients(tiny_model_dir, inner, prefix):
    batch = collate(items(prefix, [(3, 2), (7, 3), (1, 1), (4, 4)]), pad_id=0)
    packed = pack(batch, min_saving=0)
    assert packed["packed"].prefix == len(prefix)
    assert_same_training(lora(tiny_model_dir), batch, packed, inner)


@pytest.mark.parametrize("inner", ["eager", "sdpa"])
def test_one_token_rows_after_a_one_token_prefix(tiny_model_dir, inner):
    """The narrowest layout: a shared first token, then one token of each row's own (grouped-query heads)."""
    rows = [Encoded([5, 11 + i, 30 + i], [-100, -100, 30 + i]) for i in range(3)]
    batch = collate(rows, pad_id=0)
    packed = pack(batch, min_saving=0)
    assert packed["packed"].prefix == 1 and packed["packed"].queries.shape == (3, 2)
    assert_same_training(lora(tiny_model_dir), batch, packed, inner)


def test_packing_with_the_full_head(tiny_model_dir):
    batch = collate(items(PREFIX, [(3, 2), (7, 3), (2, 2)]), pad_id=0)
    assert_same_training(lora(tiny_model_dir), batch, pack(batch, min_saving=0), "eager", fast_head=False)


def test_packing_on_a_bf16_base_stays_within_bf16_rounding(tiny_model_dir):
    """The additive mask in bf16 (eager) and the gathers keep the padded loss and gradients within bf16's
    rounding (elementwise, bf16 sums in another order differ by more; the gradients' norms do not)."""
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="eager", dtype=torch.bfloat16)
    model = lora(model=base)
    batch = collate(items(PREFIX, [(3, 2), (7, 3), (2, 2)]), pad_id=0)
    register_kernels()
    loss, n, grads = loss_and_grads(model, batch)
    switch_attention(model, KERNELS["eager"])
    packed_loss, packed_n, packed_grads = loss_and_grads(model, pack(batch, min_saving=0))
    assert packed_n == n  # the same trained tokens
    assert packed_loss == pytest.approx(loss, rel=2e-2)
    for name, grad in grads.items():
        assert float((packed_grads[name] - grad).norm() / grad.norm()) < 0.05, name


def test_validation_metrics_run_on_the_inner_kernel(tiny_model_dir):
    model = lora(tiny_model_dir)
    register_kernels()
    switch_attention(model, KERNELS["sdpa"])
    with unpacked_attention(model):
        assert model.config._attn_implementation == "sdpa"
    assert model.config._attn_implementation == KERNELS["sdpa"]
    switch_attention(model, "eager")
    with unpacked_attention(model):  # not training packed: left alone
        assert model.config._attn_implementation == "eager"


def test_no_row_attends_to_another(tiny_model_dir):
    """Changing one row's tokens changes that row's logits only (the prefix is shared, nothing else)."""
    model = lora(tiny_model_dir)
    register_kernels()
    switch_attention(model, KERNELS["eager"])
    rows = items(PREFIX, [(3, 2), (5, 2), (2, 2)])
    changed = list(rows)
    changed[1] = Encoded([x if i < 7 else 63 - x % 40 for i, x in enumerate(rows[1].input_ids)], rows[1].labels)
    with torch.no_grad():
        before, _ = trained_logits(model, pack(collate(rows, 0), min_saving=0), fast_head=True)
        after, _ = trained_logits(model, pack(collate(changed, 0), min_saving=0), fast_head=True)
    # two trained positions per row (the last target has no successor position): rows 0, 1, 2 -> 2 + 2 + 2
    torch.testing.assert_close(after[:2], before[:2], rtol=0, atol=0)
    torch.testing.assert_close(after[4:], before[4:], rtol=0, atol=0)
    assert not torch.allclose(after[2:4], before[2:4])


def tiny_config(kind: str):
    import transformers

    common = {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256, "pad_token_id": 0}
    return {"qwen2": lambda: transformers.Qwen2Config(**common),
            "qwen3": lambda: transformers.Qwen3Config(**common, head_dim=8),
            "mistral": lambda: transformers.MistralConfig(**common, sliding_window=None),
            "mistral-window": lambda: transformers.MistralConfig(**common, sliding_window=1024),
            "phi3": lambda: transformers.Phi3Config(**common)}[kind]()


@pytest.mark.parametrize("inner", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", ["qwen2", "qwen3", "mistral", "mistral-window", "phi3"])
def test_every_supported_architecture_trains_packed_exactly(kind, inner):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(tiny_config(kind), attn_implementation="eager")
    assert packing_problem(base, 512) is None  # a sliding window longer than max_length is no obstacle
    batch = collate(items(PREFIX, [(3, 2), (7, 3), (2, 2)]), pad_id=0)
    assert_same_training(lora(model=base), batch, pack(batch, min_saving=0), inner)


@pytest.mark.parametrize("inner", ["eager", "sdpa"])
def test_gradient_checkpointing_passes_the_packed_layout_through(tiny_model_dir, inner):
    model = lora(tiny_model_dir)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    batch = collate(items(PREFIX, [(3, 2), (7, 3), (2, 2)]), pad_id=0)
    assert_same_training(model, batch, pack(batch, min_saving=0), inner)


# ---------------------------------------------------------------------------------- fallbacks
def test_unsupported_models_are_named_with_the_reason():
    import transformers

    gpt2 = AutoModelForCausalLM.from_config(transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64))
    assert "'gpt2' is not one of" in packing_problem(gpt2, 512)
    windowed = AutoModelForCausalLM.from_config(tiny_config("qwen2").__class__(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=2, use_sliding_window=True, sliding_window=128))
    assert "sliding attention window (128) is shorter than backend.max_length (512)" in packing_problem(windowed, 512)
    assert packing_problem(windowed, 128) is None
    unused = AutoModelForCausalLM.from_config(tiny_config("qwen2").__class__(  # a window the model does not use
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=2, use_sliding_window=False, sliding_window=128))
    assert packing_problem(unused, 512) is None


def test_a_packed_batch_without_its_mask_is_refused_and_the_inner_kernel_comes_back_after_errors(tiny_model_dir):
    from ftframe.engine.packing import packed_attention

    batch = pack(collate(items(PREFIX, [(3, 2), (7, 3)]), pad_id=0), min_saving=0)
    q = torch.zeros(1, 2, len(batch["input_ids"][0]), 8)
    with pytest.raises(RuntimeError, match="without its packed mask"):
        packed_attention(lambda *a, **k: (a[1], None))(None, q, q, q, None, packed=batch["packed"])
    model = lora(tiny_model_dir)
    register_kernels()
    switch_attention(model, KERNELS["sdpa"])
    with pytest.raises(ValueError), unpacked_attention(model):
        assert model.config._attn_implementation == "sdpa"
        raise ValueError("a failing validation scorer")
    assert model.config._attn_implementation == KERNELS["sdpa"]


def test_a_packed_batch_needs_the_packed_kernel(tiny_model_dir):
    model = lora(tiny_model_dir)
    batch = pack(collate(items(PREFIX, [(3, 2), (7, 3)]), pad_id=0), min_saving=0)
    with pytest.raises(RuntimeError, match="packed batch needs one of the attention kernels"):
        causal_lm_loss(model, batch, fast_head=True)


def val_losses(run_dir: Path) -> list[float]:
    with (run_dir / "logs" / "csv" / "metrics.csv").open() as f:
        return [float(r["val/loss"]) for r in csv.DictReader(f) if r.get("val/loss")]


@pytest.fixture(scope="module")
def data_path(tmp_path_factory) -> Path:
    return write_chat_jsonl(tmp_path_factory.mktemp("data") / "toy.jsonl", toy_classification_rows(8),
                            system="Classify the ticket as billing or technical.")


def test_a_run_reports_its_packed_batches_and_can_switch_packing_off(tmp_path, tiny_model_dir, data_path):
    base = {"eval.baseline": False, "exporters": "[]", "backend.precision": "fp32"}
    packed = run_tiny(tmp_path / "packed", tiny_run_overrides(tiny_model_dir, data_path, **base)).metrics["train"]
    padded = run_tiny(tmp_path / "padded", tiny_run_overrides(tiny_model_dir, data_path, **base,
                                                              **{"backend.packing": False})).metrics["train"]
    assert packed["packed_batches"] == packed["steps"] > 0 and padded["packed_batches"] == 0  # grad_accum 1
    assert packed["trained_tokens"] == padded["trained_tokens"]  # the same tokens trained...
    assert packed["computed_tokens"] < 0.8 * padded["computed_tokens"]  # ...the shared system prompt once per batch
    # validation batches go through the same packed collate: in fp32 the same training gives the padded run's
    # validation losses (which padded validation batches would give too: this checks training, not them)
    packed_val, padded_val = (val_losses(tmp_path / name) for name in ("packed", "padded"))
    assert len(packed_val) == len(padded_val) > 0
    assert packed_val == pytest.approx(padded_val, rel=1e-3)
