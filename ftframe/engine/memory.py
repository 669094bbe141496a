"""Memory preflight: estimate what training will need before it starts, and refuse what cannot fit.

The estimate is for the model as it will train (the backend has already chosen trainable parameters,
dtypes and quantisation), so one function serves LoRA, QLoRA, full fine-tuning and DPO:

* parameters: the bytes the weights occupy now (4-bit weights count at their packed size); on the CPU
  they are in memory already, except those still in a memory-mapped file (safetensors weights loaded in
  their stored dtype), which training reads in;
* gradients: one value per trainable parameter in its dtype; optimizer: AdamW keeps two more (its
  ``exp_avg`` and ``exp_avg_sq`` are created like the parameter: 2 bytes each for a bf16-true full model);
* activations: per layer that the backward pass goes through, ``s·b·h·(34 + 5·a·s/h)`` bytes at 16 bits
  (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models", eq. 2),
  scaled to the activation dtype; with gradient checkpointing only each layer's input is kept plus one
  layer's full activations;
* logits: the vocabulary head's output and its gradient in fp32 at the positions it runs on;
* optimizer step: the temporaries of AdamW's update, ``exp_avg_sq.sqrt() / bias_correction``. On the CPU
  torch's default is the per-tensor implementation: two temporaries the size of the largest trainable
  tensor (an untied 32,000 x 2,048 bf16 head: 0.24 GiB). On CUDA it is the ``foreach`` one, whose
  ``_foreach_sqrt`` makes one temporary of every trainable tensor at once: the gradients' size again.

It is an estimate (allocator overhead, fragmentation and the framework are not counted, so the check
keeps a 10% margin; glibc's heap keeps freed mid-sized tensors, measured in docs/training.md), meant to
stop a run that would be killed by the kernel or CUDA minutes in, with a message that says what to change.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ftframe.errors import InsufficientMemory

GiB = 1024**3
MARGIN = 1.1


@dataclass
class MemoryEstimate:
    parameters: int
    """Bytes; counted in ``needed`` when the weights still have to move to the device (on the CPU only
    their memory-mapped part, ``mapped_parameters``)."""
    gradients: int
    optimizer: int
    activations: int
    logits: int
    available: int
    device: str
    weights_resident: bool
    """The weights already occupy the memory ``available`` was measured in (CPU training)."""
    process_rss: int = 0
    """This process's resident memory when the estimate was made (CPU training: the framework, the data and
    the weights it has copied into memory); 0 on a GPU."""
    mapped_parameters: int = 0
    """Bytes of the weights that still lie in a memory-mapped file (safetensors weights loaded in their
    stored dtype are not copied): no RSS yet, but every page joins it once training reads it."""
    optimizer_step: int = 0
    """Bytes AdamW's update allocates while it runs (the module docstring: per-tensor on the CPU, foreach on CUDA)."""

    @property
    def needed(self) -> int:
        """What training adds to the memory in use now: gradients, optimizer state and its step's temporaries,
        activations and logits, and the weights that are not in memory yet (all of them on a GPU, the memory-mapped ones on the CPU)."""
        extra = self.gradients + self.optimizer + self.optimizer_step + self.activations + self.logits
        return extra + (self.mapped_parameters if self.weights_resident else self.parameters)

    @property
    def expected_peak(self) -> int:
        """The peak to expect while training: on the CPU the process's RSS (``process_rss + needed``), on a
        GPU its allocated memory (``torch.cuda.max_memory_allocated``: ``needed``, the weights included)."""
        return self.process_rss + self.needed if self.weights_resident else self.needed

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "needed": self.needed, "expected_peak": self.expected_peak}

    def describe(self) -> str:
        gb = lambda n: f"{n / GiB:.2f} GiB"
        loaded = ""
        if self.weights_resident:
            mapped = self.mapped_parameters
            loaded = f" ({gb(mapped)} memory-mapped, not read yet)" if mapped else " (already loaded)"
        return (f"parameters {gb(self.parameters)}{loaded}, "
                f"gradients {gb(self.gradients)}, "
                f"optimizer {gb(self.optimizer)} (+{gb(self.optimizer_step)} while stepping), "
                f"activations {gb(self.activations)}, logits {gb(self.logits)}; "
                f"needed {gb(self.needed)} of {gb(self.available)} available on {self.device}")


def _decoder_layers(model: Any) -> list[Any]:
    for module in model.modules():
        layers = getattr(module, "layers", None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers) > 0:
            return list(layers)
    return []


def available_memory(device: str) -> int:
    """Free memory on the training device: CUDA's free memory, else the host's available RAM (psutil)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info()[0])
    import psutil

    return int(psutil.virtual_memory().available)


def process_rss() -> int:
    """This process's resident set size (psutil)."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def mapped_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of ``tensors`` whose data lies in a memory-mapped file (Linux ``/proc/self/maps``; 0 where it
    cannot be read). Such pages count in the RSS only once read, and the kernel may drop them again."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return 0
    regions = sorted((int(lo, 16), int(hi, 16)) for line in maps.splitlines()
                     if len(parts := line.split(maxsplit=5)) == 6 and parts[5].startswith("/")
                     for lo, hi in [parts[0].split("-")])
    starts = [lo for lo, _ in regions]
    seen: set[int] = set()
    total = 0
    for t in tensors:
        ptr = t.data_ptr()
        i = bisect.bisect_right(starts, ptr) - 1
        if ptr not in seen and i >= 0 and ptr < regions[i][1]:
            seen.add(ptr)
            total += t.numel() * t.element_size()
    return total


def estimate(model: Any, *, batch_size: int, seq_len: int, gradient_checkpointing: bool, device: str = "cpu",
             available: int | None = None, fast_head: bool = True, sequences_per_item: int = 1) -> MemoryEstimate:
    """What training ``model`` on ``batch_size`` x ``seq_len`` tokens needs (``sequences_per_item``: 2 for
    preference pairs, which run chosen and rejected together)."""
    params = list(model.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    # A gradient, and each of AdamW's exp_avg and exp_avg_sq, takes its parameter's dtype (fp32 adapters and
    # bf16-mixed weights: 4 bytes each; full bf16-true weights: 2).
    sizes = [p.numel() * p.element_size() for p in params if p.requires_grad]
    grads = sum(sizes)
    optim = 2 * grads
    on_cpu = not device.startswith("cuda")
    # torch picks AdamW's implementation by device (foreach on CUDA, per-tensor elsewhere); both measured
    # in tests/unit/test_memory_estimate.py
    step = 2 * max(sizes, default=0) if on_cpu else grads
    cfg = getattr(model, "config", None)
    hidden = int(getattr(cfg, "hidden_size", 0) or 0)
    heads = int(getattr(cfg, "num_attention_heads", 1) or 1)
    vocab = int(getattr(cfg, "vocab_size", 0) or 0)
    layers = _decoder_layers(model)
    # The backward pass reaches down to the lowest layer that has a trainable parameter.
    first = next((i for i, layer in enumerate(layers) if any(p.requires_grad for p in layer.parameters())),
                 len(layers))
    deep = len(layers) - first
    b, s = batch_size * sequences_per_item, seq_len
    act_bytes = max((p.element_size() for p in params if p.is_floating_point()), default=4)
    per_layer = s * b * hidden * (34 + 5 * heads * s / max(hidden, 1)) * act_bytes / 2
    if gradient_checkpointing:
        activations = deep * s * b * hidden * act_bytes + (per_layer if deep else 0)
    else:
        activations = deep * per_layer
    positions = b * s // 2 if fast_head else b * s  # the fast head runs at trained positions only
    logits = 2 * 4 * positions * vocab if trainable else 0
    avail = available if available is not None else available_memory(device)
    return MemoryEstimate(param_bytes, grads, optim, int(activations), logits, int(avail), device, on_cpu,
                          process_rss() if on_cpu else 0, mapped_bytes(params) if on_cpu else 0, step)


def preflight(model: Any, *, mode: str, hints: Sequence[str] = (), batch_size: int, seq_len: int, gradient_checkpointing: bool,
              device: str = "cpu", available_gb: float | None = None, fast_head: bool = True,
              sequences_per_item: int = 1, warn: Any = print) -> MemoryEstimate | None:
    """Estimate and check; ``mode`` is ``error`` (raise :class:`InsufficientMemory`), ``warn`` or ``off``.

    ``hints`` are the backend's own suggestions (e.g. a lighter backend), listed before the generic ones.
    """
    if mode == "off":
        return None
    available = int(available_gb * GiB) if available_gb is not None else None
    est = estimate(model, batch_size=batch_size, seq_len=seq_len, gradient_checkpointing=gradient_checkpointing,
                   device=device, available=available, fast_head=fast_head, sequences_per_item=sequences_per_item)
    if est.needed * MARGIN <= est.available:
        return est
    hints = list(hints)
    if batch_size > 1:
        hints.append(f"a smaller batch (backend.batch_size={max(1, batch_size // 2)} with "
                     f"backend.grad_accum doubled keeps the effective batch)")
    if not gradient_checkpointing:
        hints.append("backend.gradient_checkpointing=true")
    hints.append(f"a shorter backend.max_length (now {seq_len})")
    message = (f"Training will not fit in memory: {est.describe()}. Try " + "; or ".join(hints)
               + ". To run anyway set backend.memory_check=warn (or backend.memory_available_gb=N to plan "
               "for another amount).")
    if mode == "error":
        raise InsufficientMemory(message)
    warn(f"warning: {message}")
    return est
