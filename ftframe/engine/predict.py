"""The predictor for models held in this process: batched greedy generation and label scoring."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from ftframe.api import Message
from ftframe.engine.chat import pad_id, render
from ftframe.errors import DataError

EVAL_PRECISIONS = ("auto", "fp32", "model")
"""``eval.precision``: compute in fp32 (answers independent of the batch), in the weights' own dtype, or
``auto``: fp32 to generate, the weights' dtype to score (see :meth:`LocalPredictor.precision_for`)."""


@contextmanager
def evaluating(model: Any, precision: str = "fp32") -> Iterator[None]:
    """``model`` in eval mode, and with ``precision="fp32"`` its bf16/fp16 parameters upcast to fp32, for
    the duration; afterwards the training mode and the dtypes are as before (bf16 -> fp32 -> bf16 is
    lossless). Quantised weights (int8/4-bit) are left alone, and so are models holding any. The upcast
    doubles those weights' memory: where the device has not twice that free, the model is evaluated as
    it is, with a warning.

    With the upcast, a PEFT adapter is also merged into the fp32 weights for the duration (one matmul per
    layer instead of three): measured 15% faster one-by-one and 22-25% faster batched generation on the
    CPU. It is unmerged before the downcast; the fp32 round trip's error (~1e-7 relative) is far below
    half a bf16 step, so the bf16 weights come back bit for bit. Weights held in fp32 are never merged:
    their unmerge would not be exact."""
    from ftframe.engine.memory import available_memory

    low = (torch.bfloat16, torch.float16)
    cast = []
    if precision == "fp32" and not any(p.dtype in (torch.uint8, torch.int8) for p in model.parameters()):
        cast = [p for p in model.parameters() if p.dtype in low]
    extra = sum(p.numel() * 2 for p in cast)  # fp32 takes 2 more bytes per element than bf16/fp16
    if cast and 2 * extra > available_memory(str(cast[0].device)):
        warnings.warn(f"Evaluating in the weights' own dtype: upcasting them to fp32 needs {extra / 2**30:.1f} GiB "
                      f"more than is free on {cast[0].device}. Answers may then depend on eval.batch_size; set "
                      f"eval.precision=model to choose this explicitly.", RuntimeWarning, stacklevel=3)
        cast = []
    dtypes = [p.dtype for p in cast]
    merge = bool(cast) and callable(getattr(model, "merge_adapter", None))
    merged = False
    was_training = model.training
    model.eval()
    try:
        for p in cast:
            p.data = p.data.float()
        if merge:
            model.merge_adapter()
            merged = True
        yield
    finally:
        if merged:
            model.unmerge_adapter()
        for p, dtype in zip(cast, dtypes):
            p.data = p.data.to(dtype)
        model.train(was_training)


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

    Prompts are sorted by length and batched (left padding for generation, explicit position ids so a
    padded row sees the same positions as an unpadded one). ``score`` runs each prompt once, keeps its
    KV cache, and scores every candidate continuation against it: exact log-likelihoods at the cost of
    one prompt pass plus a few tokens per candidate. ``loglik`` does the same for one reply per prompt
    (the gold answer for perplexity; the two answers for a log-likelihood judge).
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

    def _encode_prompts(self, prompts: Sequence[list[Message]]) -> list[list[int]]:
        texts = [render(self.tokenizer, p, generation_prompt=True) for p in prompts]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = max(len(r) for r in rows)
        pad = self._pad_id()
        ids = torch.full((len(rows), n), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, n - len(r):] = torch.tensor(r)
            mask[i, n - len(r):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        dev = self._device()
        return ids.to(dev), mask.to(dev), pos.to(dev)

    # -------------------------------------------------------------------------------- generate
    @torch.no_grad()
    def generate(self, prompts: Sequence[list[Message]], *, max_new_tokens: int,
                 progress: Callable[[int], None] | None = None) -> list[str]:
        encoded = self._encode_prompts(prompts)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out: list[str] = [""] * len(encoded)
        with evaluating(self.model, self.precision_for("generate")):
            for batch in _batches(order, self.batch_size):
                ids, mask, _ = self._left_pad([encoded[i] for i in batch])
                gen = self.model.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                    pad_token_id=self._pad_id(),
                    eos_token_id=self.tokenizer.eos_token_id, temperature=None, top_p=None, top_k=None,
                )
                for row, i in enumerate(batch):
                    out[i] = self.tokenizer.decode(gen[row, ids.shape[1]:], skip_special_tokens=True).strip()
                if progress:
                    progress(len(batch))
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
        cand_ids = self._candidate_ids(prompts, prompt_ids, candidates)
        n_cand = len(candidates[0]) if candidates else 0
        order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
        result: list[list[tuple[float, int]]] = [[(0.0, 0)] * n_cand for _ in prompts]
        with evaluating(self.model, self.precision_for("score")):
            for batch in _batches(order, self.batch_size):
                self._score_batch(batch, prompt_ids, cand_ids, n_cand, result)
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

    def _score_batch(self, batch: list[int], prompt_ids: list[list[int]], cand_ids: list[list[list[int]]],
                     n_cand: int, result: list[list[tuple[float, int]]]) -> None:
        from transformers import DynamicCache

        ids, mask, pos = self._left_pad([prompt_ids[i] for i in batch])
        cache = DynamicCache()
        first = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                           use_cache=True, logits_to_keep=1)
        first_logp = torch.log_softmax(first.logits[:, -1].float(), dim=-1)
        dev = ids.device
        next_pos = pos[:, -1:] + 1
        for c in range(n_cand):
            rows = [cand_ids[i][c] for i in batch]
            if any(not row for row in rows):
                raise DataError("A reply to score tokenises to nothing (an empty answer?); it has no "
                                "log-likelihood.")
            n = max(len(r) for r in rows)
            tok = torch.zeros((len(rows), n), dtype=torch.long)
            valid = torch.zeros((len(rows), n), dtype=torch.bool)
            for r, row in enumerate(rows):
                tok[r, :len(row)] = torch.tensor(row)
                valid[r, :len(row)] = True
            tok, valid = tok.to(dev), valid.to(dev)
            total = first_logp.gather(1, tok[:, :1]).squeeze(1)
            if n > 1:
                cmask = torch.cat([mask, torch.ones_like(tok)], dim=1)
                cpos = next_pos + torch.arange(n, device=dev)
                out = self.model(input_ids=tok, attention_mask=cmask, position_ids=cpos, past_key_values=cache,
                                 use_cache=True)
                logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
                step = logp.gather(2, tok[:, 1:].unsqueeze(-1)).squeeze(-1)
                total = total + (step * valid[:, 1:]).sum(1)
                cache.crop(-n)  # back to the prompt for the next candidate
            for r, i in enumerate(batch):
                result[i][c] = (float(total[r]), len(rows[r]))
