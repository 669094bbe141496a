"""Batched decoding with a KV cache that rows join and leave between steps (continuous batching).

One :class:`BatchDecoder` holds the rows being decoded, their KV cache and the logits of their next token.
:meth:`BatchDecoder.add` runs new prompts (a prefix they all share once) and merges them into the running
batch; :meth:`BatchDecoder.step` picks every row's next token, retires the rows that ended, and runs the
others one token further. Evaluation (``LocalPredictor.generate``) refills the batch from its queue of
prompts as rows end; ``ftframe serve`` adds requests as they arrive, so concurrent clients share steps.

Written here rather than calling transformers' ``generate`` because ``generate`` decodes a fixed batch to
its end: a row that has ended keeps costing every later step, and nothing can join (vLLM's continuous
batching, in plain PyTorch on transformers' ``DynamicCache``). Each step is transformers' greedy step (the
argmax of the same logits); a test checks answers against ``generate(do_sample=False)``.

Layout: every row's cache is ``[left padding][its prompt and tokens]``, ``mask`` zero on the padding and
positions explicit (``position_ids``), so a padded row computes what it would alone. Rows of different
lengths are merged by left-padding the shorter side; columns no live row uses any more are trimmed.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ftframe.engine.constrain import Grammar

MIN_SHARED_PREFIX = 8
"""Rows of a batch that begin with at least this many identical tokens run them once (see
:func:`prefill`); for fewer, the extra one-row pass costs about what it saves."""


def shared_prefix_len(rows: Sequence[Sequence[int]]) -> int:
    """How many tokens every row begins with, leaving at least one token of each row after them
    (0 for a single row: nothing to share)."""
    if len(rows) < 2:
        return 0
    first, limit = rows[0], min(len(r) for r in rows) - 1
    for k in range(limit):
        if any(r[k] != first[k] for r in rows):
            return k
    return max(limit, 0)


def cache_kwarg(model: Any) -> str:
    """The name the model's ``forward`` takes its KV cache by: ``cache`` (transformers >= 5.x, where
    ``past_key_values`` is deprecated) or ``past_key_values``."""
    name = getattr(model, "_ftframe_cache_kwarg", None)
    if name is None:
        base = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
        name = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
        try:
            model._ftframe_cache_kwarg = name
        except AttributeError:
            pass
    return name


def forward(model: Any, cache: Any, **kwargs: Any) -> Any:
    """``model(**kwargs)`` with ``cache`` under the name this transformers version uses."""
    return model(**kwargs, **{cache_kwarg(model): cache}, use_cache=True)


def _mask_if_padded(mask: torch.Tensor) -> torch.Tensor | None:
    return mask if not bool(mask.all()) else None


def left_pad(rows: Sequence[Sequence[int]], pad: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)`` of ``rows`` left-padded to one length."""
    n = max(len(r) for r in rows)
    ids = torch.full((len(rows), n), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, n - len(r):] = torch.tensor(r)
            mask[i, n - len(r):] = 1
    return ids.to(device), mask.to(device)


def run_prefix(model: Any, prefix: torch.Tensor, cache: Any) -> None:
    """Fill ``cache`` with ``prefix`` (one row), whose logits nobody reads: through the decoder alone
    where the model exposes one (``get_decoder``), else through the model for one position's logits."""
    get = getattr(model, "get_decoder", None)
    decoder = get() if callable(get) else model
    if decoder is model:  # transformers' get_decoder() returns the model itself when it has no other
        forward(model, cache, input_ids=prefix, logits_to_keep=1)
    else:
        forward(decoder, cache, input_ids=prefix)


def prefill(model: Any, rows: list[list[int]], pad: int) -> tuple[torch.Tensor, Any, torch.Tensor]:
    """Run a batch of prompts: ``(mask, cache, last logits)``; ``cache`` holds every prompt token.

    Rows that begin with the same :data:`MIN_SHARED_PREFIX` or more tokens (a test set's chat template and
    system prompt: about half of each BANKING77 prompt) run them once, as one row whose keys and values are
    then copied to every row. The layout is ``[prefix][padding][rest]`` with ``mask`` zero on the padding,
    so positions (``mask.cumsum - 1``) are those of the unpadded prompt. Without any padding the mask is
    not passed: the model then takes its plain causal path (~10% faster)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    shared = shared_prefix_len(rows)
    shared = shared if shared >= MIN_SHARED_PREFIX else 0
    device = next(model.parameters()).device
    ids, mask = left_pad([r[shared:] for r in rows], pad, device)
    if shared:
        run_prefix(model, torch.tensor([rows[0][:shared]], device=device), cache)
        cache.batch_repeat_interleave(len(rows))
        mask = torch.cat([mask.new_ones((len(rows), shared)), mask], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = forward(model, cache, input_ids=ids, attention_mask=_mask_if_padded(mask),
                     position_ids=positions[:, shared:], logits_to_keep=1).logits[:, -1]
    return mask, cache, logits


MAX_PREFILL_PADDING = 0.1
"""A prefill pass holds prompts whose padding adds at most this share to their tokens (see
:func:`prefill_groups`)."""


def prefill_groups(lengths: Sequence[int], max_padding: float = MAX_PREFILL_PADDING) -> list[list[int]]:
    """Indices of prompts grouped for prefill, shortest first, each group padded by at most ``max_padding``
    of its tokens.

    Prefilling prompts of mixed lengths in one left-padded pass computes every padding position as well;
    on a CPU the pass is compute-bound, so batching saves nothing to pay for it (measured on triage prompts
    of 45-305 tokens, the embedded model: 64 prompts alone 12.7 s, in padded fours 15.5 s, in padded eights
    22.5 s). Requests arriving at a server come in any mix of lengths; a test set sorted by length
    mostly stays in a few groups."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    tokens = 0
    for i in order:
        group = groups[-1] if groups else None
        # sorted ascending: the new prompt is the longest, so the padded pass is len(group+1) * lengths[i]
        if group is not None and (len(group) + 1) * lengths[i] <= (1 + max_padding) * (tokens + lengths[i]):
            group.append(i)
            tokens += lengths[i]
        else:
            groups.append([i])
            tokens = lengths[i]
    return groups


@dataclass
class Sampling:
    """How a row picks its tokens: greedy (``temperature`` 0) or sampled, reproducibly with ``seed``."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    generator: torch.Generator | None = field(default=None, init=False, repr=False)

    def pick(self, logits: torch.Tensor) -> int:
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        scores = TemperatureLogitsWarper(self.temperature)(None, logits[None].float())
        if self.top_p < 1.0:
            scores = TopPLogitsWarper(self.top_p)(None, scores)
        if self.generator is None:
            self.generator = torch.Generator(device=logits.device)
            if self.seed is not None:
                self.generator.manual_seed(self.seed)
            else:
                self.generator.seed()
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))


@dataclass
class Row:
    """One sequence being decoded. ``finish`` is set when it leaves the batch: ``stop`` (end token or the
    grammar completed), ``length`` (``max_new_tokens`` reached) or ``cancelled``."""

    prompt: list[int]
    max_new_tokens: int
    key: Any = None
    grammar: Grammar | None = None
    sampling: Sampling | None = None
    tokens: list[int] = field(default_factory=list)
    finish: str | None = None
    matcher: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.grammar is not None:
            self.matcher = self.grammar.matcher()


class BatchDecoder:
    """Rows decoding together over one KV cache (see the module docstring).

    ``end_ids``: tokens that end a row (the tokenizer's eos; for a chat model also its end-of-turn
    token). Rows under a grammar end when the grammar is complete. Not thread-safe: one thread drives it.
    """

    def __init__(self, model: Any, *, pad_id: int, end_ids: Sequence[int]):
        self.model, self.pad_id, self.end_ids = model, pad_id, set(end_ids)
        self.rows: list[Row] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None
        self.next_pos: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None
        self.steps = 0
        """Forward passes of one token per row so far (prefill passes not counted)."""

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def can_join(self) -> bool:
        """Whether rows can be merged into a running batch (transformers' plain dynamic cache layers;
        other caches, e.g. sliding-window ones, decode one admitted group at a time)."""
        return self.cache is None or _mergeable(self.cache)

    # ------------------------------------------------------------------------------------------- join
    @torch.no_grad()
    def add(self, rows: Sequence[Row]) -> list[Row]:
        """Prefill ``rows`` and add them to the batch. Returns the rows that ended at once (no tokens to
        generate); the others decode from the next :meth:`step`."""
        todo = [r for r in rows if r.max_new_tokens > 0]
        done = [r for r in rows if r.max_new_tokens <= 0]
        for r in done:
            r.finish = "length"
        if not todo:
            return done
        if self.rows and not self.can_join:
            raise RuntimeError("this model's cache cannot take new rows while others decode; wait for them")
        groups = prefill_groups([len(r.prompt) for r in todo])
        parts = []
        for group in groups:
            mask, cache, logits = prefill(self.model, [todo[i].prompt for i in group], self.pad_id)
            parts.append((mask, cache, logits, mask.sum(-1, keepdim=True)))
        if not self.rows and len(parts) == 1:
            self.mask, self.cache, self.logits, self.next_pos = parts[0]
        else:
            self._merge(parts)
        self.rows.extend(todo[i] for group in groups for i in group)  # the order of the cache's rows
        return done

    def _merge(self, parts: list[tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]]) -> None:
        """Append prefilled groups ``(mask, cache, logits, next_pos)`` to the batch: one copy of each layer.
        (:func:`prefill` builds plain dynamic caches, which concatenate; any other kind is refused here.)"""
        if not all(_mergeable(p[1]) for p in parts):
            raise RuntimeError("these KV caches cannot be concatenated (not plain dynamic layers)")
        if self.cache is not None:
            assert self.mask is not None and self.logits is not None and self.next_pos is not None
            parts = [(self.mask, self.cache, self.logits, self.next_pos), *parts]
        width = max(mask.shape[1] for mask, _, _, _ in parts)
        target = parts[0][1]
        for k, layer in enumerate(target.layers):
            layer.keys = torch.cat([_pad_seq(p[1].layers[k].keys, width) for p in parts], dim=0)
            layer.values = torch.cat([_pad_seq(p[1].layers[k].values, width) for p in parts], dim=0)
        self.cache = target
        self.mask = torch.cat([_pad_mask(p[0], width) for p in parts], dim=0)
        self.logits = torch.cat([p[2].to(parts[0][2].dtype) for p in parts], dim=0)
        self.next_pos = torch.cat([p[3] for p in parts], dim=0)

    # ------------------------------------------------------------------------------------------ leave
    def cancel(self, keys: set[Any]) -> list[Row]:
        """Remove the rows whose ``key`` is in ``keys`` (a client gone away); they end ``cancelled``."""
        gone = [r for r in self.rows if r.key in keys]
        for r in gone:
            r.finish = "cancelled"
        self._keep([i for i, r in enumerate(self.rows) if r.key not in keys])
        return gone

    def _keep(self, keep: list[int]) -> None:
        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self.cache = self.mask = self.next_pos = self.logits = None
            return
        assert self.mask is not None and self.logits is not None and self.next_pos is not None
        index = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.next_pos, self.logits = self.mask[index], self.next_pos[index], self.logits[index]
        used = self.mask.any(0)
        first = int(used.int().argmax())  # columns left of every live row's first token: padding for all
        if first > 0 and self.can_join:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
            self.mask = self.mask[:, first:]

    # ------------------------------------------------------------------------------------------- step
    @torch.no_grad()
    def step(self) -> list[Row]:
        """Append one token to every row; returns the rows that ended (removed from the batch)."""
        if not self.rows:
            return []
        assert self.logits is not None and self.mask is not None and self.next_pos is not None
        logits = self.logits
        if any(r.grammar is not None for r in self.rows):
            logits = self._constrain(logits)
        greedy = logits.argmax(-1).tolist()
        tokens, keep, ended = [], [], []
        for k, (row, token) in enumerate(zip(self.rows, greedy)):
            if row.sampling is not None and row.sampling.temperature > 0:
                token = row.sampling.pick(logits[k])
            row.tokens.append(token)
            tokens.append(token)
            if row.matcher is not None:
                row.matcher.consume_token(token)
            if token in self.end_ids or (row.matcher is not None and row.matcher.is_stopped()):
                row.finish = "stop"
            elif len(row.tokens) >= row.max_new_tokens:
                row.finish = "length"
            if row.finish:
                ended.append(row)
            else:
                keep.append(k)
        if ended:
            self._keep(keep)
        if not self.rows:
            return ended
        assert self.mask is not None and self.next_pos is not None
        ids = torch.tensor([tokens[k] for k in keep], device=self.mask.device).unsqueeze(1)
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        self.logits = forward(self.model, self.cache, input_ids=ids, attention_mask=_mask_if_padded(self.mask),
                              position_ids=self.next_pos).logits[:, -1]
        self.next_pos = self.next_pos + 1
        self.steps += 1
        return ended

    def _constrain(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` with the tokens each row's grammar forbids set to -inf (rows without one untouched)."""
        import llguidance.torch as llt

        logits = logits.float().clone()
        vocab = logits.shape[-1]
        bitmask = llt.allocate_token_bitmask(len(self.rows), vocab)  # all ones: every token allowed
        for k, row in enumerate(self.rows):
            if row.matcher is not None:
                llt.fill_next_token_bitmask(row.matcher, bitmask, k)
        llt.apply_token_bitmask_inplace(logits, bitmask.to(logits.device))
        return logits


def _mergeable(cache: Any) -> bool:
    """Whether ``cache``'s rows can be concatenated with another's (transformers' plain dynamic layers)."""
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None]))


def _pad_seq(t: torch.Tensor, width: int) -> torch.Tensor:
    """``[batch, heads, length, dim]`` left-padded with zeros to ``width`` positions."""
    missing = width - t.shape[2]
    if missing <= 0:
        return t
    return torch.cat([t.new_zeros((t.shape[0], t.shape[1], missing, t.shape[3])), t], dim=2)


def _pad_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    missing = width - mask.shape[1]
    return mask if missing <= 0 else torch.cat([mask.new_zeros((mask.shape[0], missing)), mask], dim=1)


def end_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The tokens that end an answer: the tokenizer's eos and the model's generation config's eos ids
    (a chat model's end-of-turn token where it differs), as ``generate`` stops on them."""
    config = getattr(model, "generation_config", None)
    extra = getattr(config, "eos_token_id", None)
    extra = extra if isinstance(extra, list) else [extra]
    return sorted({i for i in [tokenizer.eos_token_id, *extra] if isinstance(i, int)})


def decode_all(decoder: BatchDecoder, rows: Sequence[Row], *, batch_size: int,
               progress: Any = None) -> None:
    """Decode ``rows`` (in the order given) keeping up to ``batch_size`` in the batch: when half of it has
    ended, the next rows join. ``progress(n)`` is called as rows end."""
    queue = list(rows)
    pending = 0
    while queue or len(decoder):
        room = batch_size - len(decoder)
        if queue and (not len(decoder) or (room >= max(1, batch_size // 2) and decoder.can_join)):
            take, queue = queue[:room], queue[room:]
            pending += len(decoder.add(take))
        ended = len(decoder.step())
        if progress and (ended or pending):
            progress(ended + pending)
            pending = 0
