"""The predictor for models held in this process: batched greedy generation and label scoring."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from ftframe.api import Message
from ftframe.engine.chat import last_user_text, pad_id, render
from ftframe.engine.constrain import ExtractiveGrammar, compile_response_format
from ftframe.engine.decoding import (
    BatchDecoder,
    Row,
    decode_all,
    end_token_ids,
    forward,
    left_pad,
    prefill,
)
from ftframe.errors import ConfigError, DataError


@contextmanager
def evaluating(model: Any, precision: str = "fp32") -> Iterator[None]:
    """``model`` in eval mode, and with ``precision="fp32"`` its bf16/fp16 parameters upcast to fp32, for
    the duration; afterwards the training mode and the dtypes are as before (bf16 -> fp32 -> bf16 is
    lossless). Quantised weights (int8/4-bit) are left alone, and so are models holding any. The upcast
    doubles those weights' memory: where the device has not twice that free, the model is evaluated as
    it is, with a warning.

    A PEFT adapter is merged into the weights for the duration: one matrix product per layer instead of
    three, and none of peft's per-call casts of the adapter's input and output. Measured on the CPU: 15%
    faster one-by-one and 22-25% faster batched generation in fp32, and label scoring in bf16 1.29x faster
    (docs/evaluation.md). Weights upcast to fp32 are unmerged before the downcast (the fp32 round trip's
    error, ~1e-7 relative, is far below half a bf16 step, so they come back bit for bit); weights merged
    in their own dtype are put back from a copy taken before the merge, as that unmerge would not be
    exact. Without the memory for that copy, the adapter stays unmerged."""
    from ftframe.engine.memory import available_memory

    low = (torch.bfloat16, torch.float16)
    quantised = any(p.dtype in (torch.uint8, torch.int8) for p in model.parameters())
    cast = [p for p in model.parameters() if p.dtype in low] if precision == "fp32" and not quantised else []
    extra = sum(p.numel() * 2 for p in cast)  # fp32 takes 2 more bytes per element than bf16/fp16
    if cast and 2 * extra > available_memory(str(cast[0].device)):
        warnings.warn(f"Evaluating in the weights' own dtype: upcasting them to fp32 needs {extra / 2**30:.1f} GiB "
                      f"more than is free on {cast[0].device}. Answers may then depend on eval.batch_size; set "
                      f"eval.precision=model to choose this explicitly.", RuntimeWarning, stacklevel=3)
        cast = []
        extra = 0
    upcast = {id(p) for p in cast}
    targets = [] if quantised else _merge_targets(model)
    kept = [p for p in targets if id(p) not in upcast]  # merged in their own dtype: restored from a copy
    copy_bytes = sum(p.numel() * p.element_size() for p in kept)
    if kept and 2 * (extra + copy_bytes) > available_memory(str(kept[0].device)):
        targets = kept = []
    dtypes = [p.dtype for p in cast]
    copies: list[torch.Tensor] = []
    merged = False
    was_training = model.training
    model.eval()
    try:
        for p in cast:
            p.data = p.data.float()
        if targets:
            copies = [p.data.clone() for p in kept]
            merged = True  # before the call: a merge that fails half-way is undone too
            model.merge_adapter()
        yield
    finally:
        if merged:
            # Also resets peft's merged state; for the weights in ``kept`` its arithmetic is then overwritten.
            model.unmerge_adapter()
        for p, data in zip(kept, copies):
            p.data = data
        for p, dtype in zip(cast, dtypes):
            p.data = p.data.to(dtype)
        model.train(was_training)


def _merge_targets(model: Any) -> list[torch.nn.Parameter]:
    """The parameters ``model.merge_adapter()`` rewrites (those of each adapter layer's base layer), or
    none where there is nothing to merge: not a PEFT model, or its adapters disabled or already merged."""
    if not callable(getattr(model, "merge_adapter", None)):
        return []
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    if not layers or any(m.disable_adapters or m.merged for m in layers):
        return []
    found = {id(p): p for m in layers for p in m.get_base_layer().parameters(recurse=False)}
    return list(found.values())


SCORE_LOGITS_BYTES = 256 * 2**20
"""Label scoring computes the vocabulary's logits at every node of the candidate trees at once; rows are
taken together only as far as those logits (``rows x nodes x vocabulary`` in fp32) stay below this."""


class CandidateTree:
    """The candidate replies of one prompt as a token trie, laid out for one forward pass.

    A *node* is a proper prefix (of one token or more) of some candidate: the model reads the node's last
    token and its logits give the probability of every token that continues that prefix. Candidates that
    begin alike (BANKING77's ``card_...``, ``transfer_...``) share nodes, and a candidate's last token
    needs none. Each node attends to the prompt and to its own ancestors only (``ancestors``), at the
    position it has in its candidate, so its logits are exactly those of the prompt followed by that
    prefix.
    """

    def __init__(self, candidates: Sequence[Sequence[int]]):
        self.tokens: list[int] = []
        self.depth: list[int] = []
        """Tokens of the prefix a node ends (1 for a candidate's first token)."""
        self.lengths: list[int] = [len(c) for c in candidates]
        steps: list[tuple[int, int, int]] = []
        parents: list[int] = []
        index: dict[tuple[int, ...], int] = {(): -1}
        for c, cand in enumerate(candidates):
            for d, token in enumerate(cand):
                key = tuple(cand[:d])
                if key not in index:
                    index[key] = len(self.tokens)
                    self.tokens.append(cand[d - 1])
                    self.depth.append(d)
                    parents.append(index[key[:-1]])
                steps.append((c, index[key], token))
        self.steps = torch.tensor(steps, dtype=torch.long).reshape(-1, 3)
        """``[candidate, node, next token]`` for every token of every candidate; node -1 is the prompt's end."""
        n = len(self.tokens)
        self.ancestors = torch.zeros((n, n), dtype=torch.bool)
        """``[node, node]``: which nodes a node attends to (its ancestors and itself)."""
        for i, parent in enumerate(parents):  # parents come first: each row extends its parent's
            if parent >= 0:
                self.ancestors[i] = self.ancestors[parent]
            self.ancestors[i, i] = True


def switch_attention(model: Any, implementation: str | None) -> str | None:
    """Set ``model``'s attention kernel (transformers' ``set_attn_implementation``); returns the one it had.
    A model without the setting (not a transformers model) is left as it is."""
    config = getattr(model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if implementation is None or current is None or current == implementation:
        return current
    model.set_attn_implementation(implementation)
    return current


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i:i + size] for i in range(0, len(order), size)]


def _contiguous_head_input(module: Any, args: tuple) -> tuple:
    return (args[0].contiguous(), *args[1:])


def guard_head_input(model: Any) -> None:
    """Make the LM head's input contiguous (once per model).

    Inference asks for the last position's logits only (``hidden[:, -1:]``, a non-contiguous view). For a
    frozen head weight, ``torch.matmul`` then does not fold the batch into one matrix product but runs a
    batched product with the (49k x 576) weight copied once per row: measured 2.7x slower for a whole
    forward pass of the embedded model. A contiguous input takes the folded path; results are identical.
    """
    head = model.get_output_embeddings() if callable(getattr(model, "get_output_embeddings", None)) else None
    if head is not None and not getattr(head, "_ftframe_guarded", False):
        head.register_forward_pre_hook(_contiguous_head_input)
        head._ftframe_guarded = True


class LocalPredictor:
    """A :class:`ftframe.api.Predictor` over a Hugging Face causal LM (optionally PEFT-wrapped).

    Prompts are sorted by length and batched: left padding with explicit position ids (a padded row sees
    the positions of an unpadded one), and a prefix common to the batch (a system prompt) run once.
    ``generate`` decodes greedily, a row leaving the batch when it ends. ``score`` runs each prompt once,
    keeps its KV cache, and scores every candidate against it in one more pass over a trie of the
    candidates' tokens: exact log-likelihoods at the cost of one prompt pass plus one token per trie
    node. ``loglik`` does the same for one reply per prompt (the gold answer for perplexity; the two
    answers for a log-likelihood judge).
    """

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "local", batch_size: int = 16,
                 precision: str = "auto"):
        self.model, self.tokenizer, self.name, self.batch_size = model, tokenizer, name, batch_size
        self.precision = precision
        """``eval.precision``: ``fp32``, ``model`` or ``auto`` (:meth:`precision_for`)."""
        guard_head_input(model)

    def precision_for(self, task: str) -> str:
        """What ``generate`` or ``score`` computes in. ``auto``: generation in fp32, because greedy
        decoding carries a bf16 rounding difference between batch shapes into every later token (on the
        CPU fp32 one-by-one generation was also faster than bf16); scoring in the weights' dtype, because
        a label's score is one sum that fp32 made 1.6x slower on the CPU (docs/evaluation.md)."""
        if self.precision != "auto":
            return self.precision
        return "fp32" if task == "generate" else "model"

    # ---------------------------------------------------------------------------------- helpers
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _pad_id(self) -> int:
        return pad_id(self.tokenizer)

    def _encode_prompts(self, prompts: Sequence[list[Message]],
                        tools: Sequence[list | None] | None = None) -> list[list[int]]:
        texts = [render(self.tokenizer, p, generation_prompt=True, tools=tools[i] if tools else None)
                 for i, p in enumerate(prompts)]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids, mask = left_pad(rows, self._pad_id(), self._device())
        return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)

    # -------------------------------------------------------------------------------- generate
    def _prompt_pass(self, rows: list[list[int]]) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """``(mask, cache, last logits)`` of a batch of prompts (:func:`ftframe.engine.decoding.prefill`)."""
        return prefill(self.model, rows, self._pad_id())

    def decoder(self) -> BatchDecoder:
        """A :class:`BatchDecoder` over this predictor's model (rows join and leave between steps)."""
        return BatchDecoder(self.model, pad_id=self._pad_id(), end_ids=end_token_ids(self.model, self.tokenizer))

    def grammar(self, response_format: dict[str, Any] | None, whitespace: str = "compact") -> Any:
        """The compiled ``response_format`` for this model's tokenizer (``None`` for free text)."""
        return compile_response_format(response_format, self.tokenizer, self._vocab_size(), whitespace=whitespace)

    @torch.no_grad()
    def generate(self, prompts: Sequence[list[Message]], *, max_new_tokens: int,
                 progress: Callable[[int], None] | None = None, response_format: dict[str, Any] | None = None,
                 json_whitespace: str = "compact", tools: Sequence[list | None] | None = None,
                 extractive: Sequence[str] = ()) -> list[str]:
        """Greedy answers, decoded in batches of ``batch_size`` that refill as rows end (prompts in order
        of length, so a batch's rows need little padding). With ``response_format`` (OpenAI's shape) every
        answer is decoded under its grammar (:mod:`ftframe.engine.constrain`); ``extractive`` names the
        schema's string properties whose values are copied from each prompt's last user message.
        ``tools``: each prompt's tool definitions, rendered by the chat template as in training."""
        grammar = self.grammar(response_format, json_whitespace)
        grammars = [grammar] * len(prompts)
        if extractive:
            if grammar is None or json_whitespace != "compact":
                raise ConfigError("Extractive decoding needs a JSON schema response format with the compact layout.")
            copier = ExtractiveGrammar(grammar.ll_tokenizer, grammar.schema, tuple(extractive))
            by_source: dict[str, Any] = {}  # short messages repeat ("Yes please"): one compile each
            for p in prompts:
                text = last_user_text(p)
                by_source[text] = by_source.get(text) or copier.for_source(text)
            grammars = [by_source[last_user_text(p)] for p in prompts]
        encoded = self._encode_prompts(prompts, tools)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        rows = [Row(encoded[i], max_new_tokens, key=i, grammar=grammars[i]) for i in order]
        with evaluating(self.model, self.precision_for("generate")):
            decode_all(self.decoder(), rows, batch_size=self.batch_size, progress=progress)
        out: list[str] = [""] * len(encoded)
        for row in rows:
            out[row.key] = self.tokenizer.decode(row.tokens, skip_special_tokens=True).strip()
        return out

    # ----------------------------------------------------------------------------------- score
    def _candidate_ids(self, prompts: Sequence[list[Message]], prompt_ids: list[list[int]],
                       candidates: Sequence[Sequence[str]]) -> list[list[list[int]]]:
        """``[prompt][candidate] -> token ids`` of the reply exactly as training tokenises it."""
        texts = [render(self.tokenizer, list(p) + [{"role": "assistant", "content": c}]).rstrip()
                 for p, cands in zip(prompts, candidates) for c in cands]
        full = iter(self.tokenizer(texts, add_special_tokens=False)["input_ids"])
        out: list[list[list[int]]] = []
        for p_ids, cands in zip(prompt_ids, candidates):
            row = []
            for _ in cands:
                ids = next(full)
                if ids[: len(p_ids)] != p_ids:
                    raise DataError("The tokenizer does not tokenise the prompt as a prefix of the full "
                                    "conversation, so label scoring would be inexact; use eval.mode=generate.")
                row.append(ids[len(p_ids):])
            out.append(row)
        return out

    @torch.no_grad()
    def _loglik_table(self, prompts: Sequence[list[Message]], candidates: Sequence[Sequence[str]],
                      progress: Callable[[int], None] | None) -> list[list[tuple[float, int]]]:
        """``[prompt][candidate] -> (log-likelihood, tokens)``; every prompt has as many candidates."""
        prompt_ids = self._encode_prompts(prompts)
        trees = [CandidateTree(row) for row in self._candidate_ids(prompts, prompt_ids, candidates)]
        for tree in trees:
            if 0 in tree.lengths:
                raise DataError("A reply to score tokenises to nothing (an empty answer?); it has no "
                                "log-likelihood.")
        order = sorted(range(len(prompt_ids)), key=lambda i: (len(prompt_ids[i]), len(trees[i].tokens)))
        nodes = max((len(t.tokens) for t in trees), default=0) + 1
        size = max(1, min(self.batch_size, SCORE_LOGITS_BYTES // (nodes * self._vocab_size() * 4)))
        result: list[list[tuple[float, int]]] = [[] for _ in prompts]
        with evaluating(self.model, self.precision_for("score")):
            for batch in _batches(order, size):
                scores = self._score_batch([prompt_ids[i] for i in batch], [trees[i] for i in batch])
                for i, row in zip(batch, scores):
                    result[i] = list(zip(row, trees[i].lengths))
                if progress:
                    progress(len(batch))
        return result

    def score(self, prompts: Sequence[list[Message]], candidates: Sequence[str], *,
              progress: Callable[[int], None] | None = None) -> list[list[float]]:
        table = self._loglik_table(prompts, [list(candidates)] * len(prompts), progress)
        return [[ll for ll, _ in row] for row in table]

    def loglik(self, prompts: Sequence[list[Message]], replies: Sequence[str], *,
               progress: Callable[[int], None] | None = None) -> list[tuple[float, int]]:
        """``(log-likelihood, tokens)`` of each reply to its prompt (a :class:`ftframe.api.ReplyScorer`)."""
        if len(prompts) != len(replies):
            raise ValueError(f"{len(prompts)} prompts but {len(replies)} replies")
        return [row[0] for row in self._loglik_table(prompts, [[r] for r in replies], progress)]

    def _vocab_size(self) -> int:
        head = self.model.get_output_embeddings() if callable(getattr(self.model, "get_output_embeddings", None)) else None
        return int(head.weight.shape[0]) if head is not None else int(self.model.config.vocab_size)

    def _score_batch(self, rows: list[list[int]], trees: list[CandidateTree]) -> list[list[float]]:
        """Log-likelihood of every candidate of every row: one pass over the prompts (KV kept), one over
        all rows' candidate trees (a 4-D mask lets each node see the prompt and its ancestors only)."""
        mask, cache, last = self._prompt_pass(rows)
        prompt_logp = torch.log_softmax(last.float(), dim=-1)
        n = max(len(t.tokens) for t in trees)
        node_logits = None
        if n:
            dev, b, length = mask.device, len(rows), mask.shape[1]
            tokens = torch.zeros((b, n), dtype=torch.long)
            node_pos = torch.zeros((b, n), dtype=torch.long)
            sees = torch.zeros((b, n, length + n), dtype=torch.bool)
            sees[:, :, :length] = mask.bool().cpu().unsqueeze(1)  # every node (padding ones too) sees its prompt
            for r, tree in enumerate(trees):
                k = len(tree.tokens)
                tokens[r, :k] = torch.tensor(tree.tokens, dtype=torch.long)
                node_pos[r, :k] = int(mask[r].sum()) + torch.tensor(tree.depth) - 1
                sees[r, :k, length:length + k] = tree.ancestors
            # A custom 4-D mask is taken by eager attention (added to the scores: the additive form, in fp32,
            # which the scores of any dtype promote to) and by sdpa (boolean); other kernels (flash, flex)
            # take none, so the candidate pass runs on sdpa.
            kernel = getattr(getattr(self.model, "config", None), "_attn_implementation", None)
            previous = switch_attention(self.model, "sdpa" if kernel != "eager" else None)
            if kernel == "eager":
                sees = torch.zeros(sees.shape).masked_fill_(~sees, torch.finfo(torch.float32).min)
            try:
                node_logits = forward(self.model, cache, input_ids=tokens.to(dev),
                                      attention_mask=sees.unsqueeze(1).to(dev), position_ids=node_pos.to(dev)).logits
            finally:
                switch_attention(self.model, previous)
        out = []
        for r, tree in enumerate(trees):
            cand, node, token = tree.steps.to(prompt_logp.device).unbind(1)
            at_prompt = node < 0
            logp = torch.empty(len(token), dtype=torch.float32, device=prompt_logp.device)
            logp[at_prompt] = prompt_logp[r, token[at_prompt]]
            if node_logits is not None and not bool(at_prompt.all()):
                inner = node[~at_prompt]
                logits = node_logits[r].float()
                logp[~at_prompt] = logits[inner, token[~at_prompt]] - logits.logsumexp(-1)[inner]
            total = torch.zeros(len(tree.lengths), dtype=torch.float64, device=logp.device)
            out.append(total.index_add_(0, cand, logp.double()).tolist())
        return out
