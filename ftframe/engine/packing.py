"""Packed training batches: a batch's rows in one row without padding, their common prefix computed once.

A chat dataset's rows usually begin with the same tokens (the system prompt and the user tag): BANKING77's
first 25 of ~48 tokens, the triage task's first 34. A padded batch runs those tokens, and the padding, once
per row through every linear layer. A packed batch is one row of the shared prefix followed by each row's
remaining tokens, with position ids that continue each row from the prefix; every linear layer then sees
only those tokens (BANKING77 batches of 8: ~240 token rows instead of ~430).

Attention keeps the rows apart. :func:`packed_attention` gathers each row's queries (the tokens after the
prefix) and keys (the prefix's and its own), so every row attends to the prefix and, causally, to itself,
exactly as in its padded row, and nothing of another row; the prefix's own queries attend causally to the
prefix. The maths is the padded batch's: same loss, and each row's contribution to the prefix's gradient
is summed by the gathers' backward pass (tests check losses and gradients against the padded batch).

Why our own: transformers packs rows ("padding-free", position ids restarting at 0) only for its
flash-attention kernels, which the CPU has not, and no library we know of shares a common prefix between
the rows of a training batch. The inner attention stays transformers' (eager or sdpa), called through its
attention-function interface.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch

from ftframe.engine.decoding import shared_prefix_len
from ftframe.engine.predict import switch_attention

MIN_SAVING = 0.1
"""Pack a batch only when that removes at least this share of its padded token rows (below that the
gathers cost about what the saved rows do)."""

PACKABLE_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3"})
"""Architectures whose attention is plain scaled dot-product attention over rotary positions, called
through transformers' attention-function interface with the keyword arguments passed down (tests check
each against its padded batch). Others train on padded batches."""

PADDED_KEYS = frozenset({"input_ids", "attention_mask", "labels"})
"""What :func:`pack` knows how to pack; a batch with other entries (an objective's own) stays padded."""

KERNELS = {"eager": "ftframe_packed_eager", "sdpa": "ftframe_packed_sdpa"}
"""The attention implementation registered for each inner kernel (a model trained with packing runs this
one; it handles padded batches too, by calling the inner kernel as it is)."""


@dataclass
class PackedRows:
    """Where the tokens of a packed batch sit for attention (built by :func:`pack`).

    Packed positions ``0 .. prefix - 1`` are the shared prefix; row ``i``'s other tokens follow in order.
    """

    prefix: int
    """Length of the shared prefix (0: rows only packed, nothing shared)."""
    queries: torch.Tensor
    """``[rows, width]`` packed position of each row's tokens after the prefix (padding: 0)."""
    keys: torch.Tensor
    """``[rows, prefix + width]``: the prefix's positions, then the row's own (padding: 0)."""
    sees: torch.Tensor
    """``[rows, 1, width, prefix + width]``: query may attend to key (bool; padding queries see key 0, so
    no softmax row is empty). :func:`for_kernel` turns it into an additive float mask for eager kernels."""
    prefix_sees: torch.Tensor
    """``[1, 1, prefix, prefix]``: the prefix's causal mask, in the form of ``sees``."""
    order: torch.Tensor
    """``[tokens]``: where each packed position's output is in ``prefix outputs ++ rows' outputs (flat)``."""


def shared_prefix(batch: dict[str, torch.Tensor]) -> int:
    """How many leading tokens every row of a padded ``batch`` shares and can compute once: it ends before
    any row's first trained token is predicted, and leaves each row at least one token of its own."""
    lengths = batch["attention_mask"].sum(1).tolist()
    rows = [batch["input_ids"][i, :n].tolist() for i, n in enumerate(lengths)]
    common = shared_prefix_len(rows)
    trained = batch["labels"] != -100
    # Position p predicts token p + 1: the prefix's last position must predict an untrained token.
    first = [int(t.nonzero()[0]) if bool(t.any()) else n for t, n in zip(trained, lengths)]
    return max(0, min(common, min(first) - 1))


def pack(batch: dict[str, torch.Tensor], *, min_saving: float = MIN_SAVING) -> dict[str, Any]:
    """``batch`` (right-padded ``input_ids``/``attention_mask``/``labels``) as one packed row with
    ``position_ids`` and ``packed`` (:class:`PackedRows`), or ``batch`` itself when packing would save
    less than ``min_saving`` of its token rows (or the batch has entries besides :data:`PADDED_KEYS`, or
    labels that are not per token).
    ``tokens`` counts the rows' tokens either way."""
    mask = batch["attention_mask"]
    lengths = mask.sum(1)
    tokens = int(lengths.sum())
    if len(lengths) < 2 or set(batch) != PADDED_KEYS or batch["labels"].shape != mask.shape:
        return {**batch, "tokens": tokens}
    prefix = shared_prefix(batch)
    own = lengths - prefix  # each row's tokens after the prefix (at least 1)
    total = prefix + int(own.sum())
    if total > (1 - min_saving) * mask.numel():
        return {**batch, "tokens": tokens}
    rows, width = len(own), int(own.max())
    span = torch.arange(width)
    valid = span < own[:, None]  # [rows, width]: a token of the row, not padding
    starts = prefix + own.cumsum(0) - own
    query_index = torch.where(valid, starts[:, None] + span, 0)
    key_index = torch.cat([torch.arange(prefix).expand(rows, prefix), query_index], dim=1)
    own_keys = torch.ones(width, width, dtype=torch.bool).tril() & valid[:, None, :] & valid[:, :, None]
    sees = torch.cat([valid[:, :, None].expand(-1, -1, prefix), own_keys], dim=2)
    # Key 0 (the prefix's first token, or the row's own first one) is seen by every valid query already;
    # padding queries see it too, so no softmax row is empty.
    sees[:, :, 0] = True
    # The packed positions list the rows' tokens in row order, as the flat [rows * width] outputs do.
    order = torch.cat([torch.arange(prefix), prefix + valid.flatten().nonzero().squeeze(1)])
    labels = batch["labels"][:, prefix:prefix + width].clone()
    labels[:, 0] = -100  # nothing predicts a row's first own token (the packed token before it is another row's)
    prefix_sees = torch.ones(prefix, prefix, dtype=torch.bool).tril()[None, None]
    packed = PackedRows(prefix, query_index, key_index, sees[:, None], prefix_sees, order)
    ids = batch["input_ids"][:, prefix:prefix + width]
    return {"input_ids": torch.cat([batch["input_ids"][0, :prefix], ids[valid]])[None],
            "labels": torch.cat([batch["labels"][0, :prefix], labels[valid]])[None],
            "position_ids": torch.cat([torch.arange(prefix), (prefix + span).expand(rows, width)[valid]])[None],
            "packed": packed, "tokens": tokens}


def packed_collate(collate: Callable[[Sequence[Any], int], dict[str, torch.Tensor]], items: Sequence[Any],
                   pad_id: int) -> dict[str, Any]:
    """``collate``'s padded batch of ``items``, packed where that saves enough (:func:`pack`)."""
    return pack(collate(items, pad_id))


def packing_problem(model: Any, max_length: int) -> str | None:
    """Why ``model`` cannot train on packed batches (None: it can)."""
    config = getattr(model, "config", None)
    kind = getattr(config, "model_type", None)
    if kind not in PACKABLE_MODEL_TYPES:
        return f"model type {kind!r} is not one of {sorted(PACKABLE_MODEL_TYPES)}"
    window = getattr(config, "sliding_window", None)
    sliding = getattr(config, "use_sliding_window", True) and window is not None
    if sliding and window < max_length:
        return f"its sliding attention window ({window}) is shorter than backend.max_length ({max_length})"
    return None


def packed_attention(inner: Callable[..., tuple[torch.Tensor, Any]]) -> Callable[..., tuple[torch.Tensor, None]]:
    """An attention function (transformers' interface) running ``inner`` per row of a packed batch;
    calls without ``packed`` (padded batches, e.g. validation) go to ``inner`` as they are."""

    def attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                  packed: PackedRows | None = None, **kwargs: Any) -> tuple[torch.Tensor, Any]:
        if packed is None:
            return inner(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
        if query.shape[0] != 1 or attention_mask is None:
            raise RuntimeError("a packed batch reached attention without its packed mask (one row and "
                               "the mask from ftframe.engine.packing are expected)")
        p = packed.prefix
        outputs = []
        if p:
            # [1, heads, p, dim]: the prefix attends causally to itself
            out, _ = inner(module, query[:, :, :p], key[:, :, :p], value[:, :, :p], packed.prefix_sees,
                           scaling=scaling, dropout=dropout, **kwargs)
            outputs.append(out.reshape(p, *out.shape[2:]))
        # [1, heads, tokens, dim] -> [rows, heads, width, dim]; index_select's backward sums what the rows
        # gathered from the prefix (index_add, cheaper than advanced indexing's index_put)
        q, k, v = (_gather(x, index) for x, index in ((query, packed.queries), (key, packed.keys), (value, packed.keys)))
        out, _ = inner(module, q, k, v, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
        outputs.append(out.flatten(0, 1))  # [rows, width, heads, dim] -> [rows * width, heads, dim]
        return torch.index_select(torch.cat(outputs), 0, packed.order)[None], None

    return attention


def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[0][:, index]`` (``[1, heads, tokens, dim]`` by a ``[rows, n]`` index) as ``[rows, heads, n, dim]``.

    Gathers whole tokens (``[tokens, heads, dim]``, the projections' own memory order) and returns the
    transposed view, as transformers' attention modules hand over their own queries."""
    return torch.index_select(x[0].transpose(0, 1), 0, index.reshape(-1)).unflatten(0, index.shape).transpose(1, 2)


def for_kernel(packed: PackedRows, kernel: str, dtype: torch.dtype) -> PackedRows:
    """``packed`` with its masks as ``kernel`` takes them: bool for sdpa, additive (0 where a query may
    attend, the ``dtype`` minimum elsewhere) for eager, which adds the mask to its scores."""
    if kernel != KERNELS["eager"]:
        return packed

    def additive(sees: torch.Tensor) -> torch.Tensor:
        return torch.zeros(sees.shape, dtype=dtype, device=sees.device).masked_fill_(~sees, torch.finfo(dtype).min)

    return replace(packed, sees=additive(packed.sees), prefix_sees=additive(packed.prefix_sees))


@contextmanager
def unpacked_attention(model: Any) -> Iterator[None]:
    """Run ``model`` on its inner kernel (``eager``/``sdpa``) inside the block when it trains with a packed
    one, e.g. for the task metrics of a validation epoch, which generate or score as after training."""
    kernel = getattr(getattr(model, "config", None), "_attn_implementation", None)
    inner = next((name for name, packed in KERNELS.items() if packed == kernel), None)
    if inner is None:
        yield
        return
    switch_attention(model, inner)
    try:
        yield
    finally:
        switch_attention(model, kernel)


def register_kernels() -> None:
    """Register the packed attention implementations with transformers (idempotent). Each training process
    calls it (``CausalLMModule.setup``): a spawned worker unpickles a model configured for them."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

    # Llama's eager attention is the same function as Mistral's, Qwen2's, Qwen3's and Phi-3's (the
    # PACKABLE_MODEL_TYPES); a model with soft-capping or attention sinks would need its own.
    from transformers.models.llama.modeling_llama import eager_attention_forward

    AttentionInterface.register(KERNELS["eager"], packed_attention(eager_attention_forward))
    AttentionInterface.register(KERNELS["sdpa"], packed_attention(sdpa_attention_forward))
    AttentionMaskInterface.register(KERNELS["eager"], eager_mask)
    AttentionMaskInterface.register(KERNELS["sdpa"], sdpa_mask)
