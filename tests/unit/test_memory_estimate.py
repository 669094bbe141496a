"""The memory estimate's terms against what training really allocates (ftframe.engine.memory)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from ftframe.engine.memory import estimate, mapped_bytes, process_rss


def _allocated_after_one_step(model) -> tuple[int, int]:
    """Bytes of the gradients and of AdamW's moment buffers after one real optimizer step."""
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    opt.step()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    moments = sum(t.numel() * t.element_size() for state in opt.state.values()
                  for key, t in state.items() if key in ("exp_avg", "exp_avg_sq"))
    return grads, moments


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gradient_and_optimizer_terms_are_what_adamw_allocates(tiny_model_dir, dtype):
    # full fine-tuning: fp32 (or bf16-mixed) weights take 4 + 8 bytes per parameter, bf16-true ones 2 + 4
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=dtype)
    est = estimate(model, batch_size=2, seq_len=16, gradient_checkpointing=False, available=1 << 40)
    grads, moments = _allocated_after_one_step(model)
    assert (est.gradients, est.optimizer) == (grads, moments)
    per_param = est.gradients / sum(p.numel() for p in model.parameters())
    assert per_param == (4 if dtype == torch.float32 else 2)


@pytest.mark.parametrize("device, foreach, weights", [("cpu", False, 1), ("cuda", True, 4)])
def test_optimizer_step_term_is_adamws_peak_while_stepping(device, foreach, weights):
    # 128 MB of weights. AdamW's per-tensor update (torch's CPU default) briefly holds two temporaries of the
    # largest weight's size (sqrt, then the division by the bias correction); the foreach one (the CUDA
    # default, run here on the CPU) one temporary of every weight at once.
    import threading
    import time

    model = torch.nn.Sequential(*(torch.nn.Linear(8192, 4096 // weights, bias=False) for _ in range(weights)))
    sizes = [p.numel() * 4 for p in model.parameters()]
    est = estimate(model, batch_size=1, seq_len=1, gradient_checkpointing=False, device=device, available=1 << 40)
    assert est.optimizer_step == (2 * max(sizes) if device == "cpu" else sum(sizes))
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=foreach)
    opt.step()  # the moments exist now; the next step allocates only its temporaries
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process_rss())
            time.sleep(0.001)

    before = process_rss()
    sampler = threading.Thread(target=sample)
    sampler.start()
    for _ in range(3):
        opt.step()
    done.set()
    sampler.join()
    assert 0.75 * est.optimizer_step <= peak[0] - before <= 1.25 * est.optimizer_step


def test_fp32_adapters_on_a_bf16_base_count_fp32_state(tiny_model_dir):
    # LoRA's layout under bf16-true: frozen bf16 base, trained fp32 weights (here: the last layer's MLP)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    model.requires_grad_(False)
    mlp = model.model.layers[-1].mlp.to(torch.float32).requires_grad_(True)
    model.model.layers[-1].mlp = mlp
    est = estimate(model, batch_size=2, seq_len=16, gradient_checkpointing=False, available=1 << 40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        grads, moments = _allocated_after_one_step(model)
    assert (est.gradients, est.optimizer) == (grads, moments) == (
        4 * sum(p.numel() for p in mlp.parameters()), 8 * sum(p.numel() for p in mlp.parameters()))


def test_expected_peak_adds_what_the_process_holds_on_the_cpu(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = process_rss()
    cpu = estimate(model, batch_size=2, seq_len=16, gradient_checkpointing=False, available=1 << 40)
    assert cpu.weights_resident and cpu.process_rss >= before * 0.9
    assert cpu.expected_peak == cpu.process_rss + cpu.needed and cpu.as_dict()["expected_peak"] == cpu.expected_peak
    gpu = estimate(model, batch_size=2, seq_len=16, gradient_checkpointing=False, device="cuda", available=1 << 40)
    assert gpu.process_rss == 0 and gpu.mapped_parameters == 0
    assert gpu.expected_peak == gpu.needed == (gpu.parameters + cpu.needed - cpu.mapped_parameters
                                               - cpu.optimizer_step + gpu.optimizer_step)


def test_weights_in_a_memory_mapped_file_are_still_needed_on_the_cpu(tmp_path, tiny_model_dir):
    # safetensors weights loaded in their stored dtype stay in the file mapping: not in the RSS before
    # training, in it once training reads them (measured at 1B parameters: scripts/bench_memory.py)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    copied = estimate(model, batch_size=2, seq_len=16, gradient_checkpointing=False, available=1 << 40)
    for p in model.parameters():  # every weight in anonymous memory now
        p.data = p.data.clone()
    extra = copied.gradients + copied.optimizer + copied.optimizer_step + copied.activations + copied.logits
    assert mapped_bytes(model.parameters()) == 0
    assert estimate(model, batch_size=2, seq_len=16, gradient_checkpointing=False, available=1 << 40).needed == extra
    weight = model.model.layers[0].mlp.up_proj.weight
    file = np.memmap(tmp_path / "w.bin", dtype=np.float32, mode="w+", shape=tuple(weight.shape))
    file[:] = weight.detach().numpy()
    weight.data = torch.from_numpy(file)
    assert mapped_bytes(model.parameters()) == weight.numel() * 4
    mapped = estimate(model, batch_size=2, seq_len=16, gradient_checkpointing=False, available=1 << 40)
    assert mapped.mapped_parameters == weight.numel() * 4 and mapped.needed == extra + weight.numel() * 4
    assert "memory-mapped, not read yet" in mapped.describe()
