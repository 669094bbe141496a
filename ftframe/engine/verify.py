"""Check an exported model against the in-memory one before the export is called done.

Weight exporters write their artefact to a temporary path, reload it the way a user would, and call
:func:`verify_reload`: on a fixed set of prompts (the first test-split prompts) the reloaded model must

1. tokenise the chat-templated prompts to exactly the same ids (same template, same vocabulary);
2. produce the same logits at every prompt position within a stated bound,
   ``max |artefact - reference| <= rtol * max |reference|``, where ``rtol`` comes from
   :data:`TOLERANCES` for the artefact's precision and the reference is the in-memory model's weights
   computed in fp32 (a bf16-held base is upcast exactly, so rounding in the *reference's* arithmetic
   does not hide or fake a difference). ``exact`` artefacts (an adapter reloaded onto the same base) are
   compared with the in-memory model as it is and must give bit-equal logits;
3. produce the same greedy continuation as the in-memory model *as evaluated* (its own dtype). Where
   the two continuations part, that model's logit margin between its token and the artefact's must be
   within the looser tolerance of the two precisions: a near-tie that precision cannot decide is
   accepted (and counted), anything else is a mismatch.

A mismatch raises :class:`VerificationFailed` naming what differed; the caller then discards the
temporary artefact (see :func:`ftframe.io.atomic_path`), so a rejected export never looks complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ftframe.api import Message, Prediction
from ftframe.engine.chat import pad_id, render
from ftframe.engine.verify_options import VerificationFailed, VerifyOptions

__all__ = ["Parting", "VerificationFailed", "VerifyOptions", "compute_precision", "generates_text", "greedy_ids",
           "greedy_parting",
           "position_logits", "tolerance_for",
           "verification_prompts", "verify_reload"]

TOLERANCES: dict[str, float] = {"exact": 0.0, "fp32": 1e-4, "fp16": 5e-3, "bf16": 5e-2}
"""Relative logit tolerance per precision: the bound is ``rtol * max |reference logit|`` per prompt.

``exact``: the same arithmetic on the same tensors (an adapter reloaded onto the same base).
``fp32``: the same weights in a different arithmetic order (e.g. ``W + BA`` merged instead of
``Wx + B(Ax)``). ``fp16``/``bf16``: weights or compute rounded to that format (bf16 keeps 8 mantissa
bits, fp16 11). Measured margins are in docs/exporting-and-serving.md.
"""


def compute_precision(model: Any) -> str:
    """``bf16``, ``fp16`` or ``fp32``: the lowest float precision among the model's parameters."""
    dtypes = {p.dtype for p in model.parameters()}
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        if dtype in dtypes:
            return name
    return "fp32"


def tolerance_for(*precisions: str) -> float:
    """The relative logit tolerance for comparing models of these precisions (the loosest one wins)."""
    unknown = [p for p in precisions if p not in TOLERANCES]
    if unknown:
        raise ValueError(f"unknown precision {unknown[0]!r}; expected one of {', '.join(TOLERANCES)}")
    return max(TOLERANCES[p] for p in precisions)


def verification_prompts(predictions: Sequence[Prediction], n: int) -> list[list[Message]]:
    """The first ``n`` distinct test prompts (the fixed set every export of a run is checked on)."""
    out: list[list[Message]] = []
    for p in predictions:
        if p.prompt not in out:
            out.append(p.prompt)
        if len(out) == n:
            break
    return out


def _eval(model: Any) -> bool:
    was = model.training
    model.eval()
    return was


@torch.no_grad()
def position_logits(model: Any, ids: list[int]) -> torch.Tensor:
    """``(len(ids), vocab)`` float32 logits of ``model`` at every position of ``ids`` (one sequence, no padding)."""
    dev = next(model.parameters()).device
    x = torch.tensor([ids], device=dev)
    return model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0].float().cpu()


def generates_text(model: Any) -> bool:
    """Whether ``model`` (or the model under its PEFT wrapper) generates text; a sequence classifier does not."""
    base = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    return bool(getattr(base, "can_generate", lambda: True)())


@dataclass(frozen=True)
class Parting:
    """Where two greedy continuations part: ``step`` (0-based) and the reference's logit ``margin`` there (its
    own token's logit minus the other's; a near-tie when small against ``scale``, the largest logit)."""

    step: int
    margin: float
    scale: float


def greedy_parting(reference: Any, ids: list[int], ref_gen: list[int], art_gen: list[int], ref_end: int | None,
                   art_end: int | None) -> Parting | None:
    """The first step at which ``art_gen`` leaves ``ref_gen`` (both continuations of ``ids``; where one is a
    prefix of the other, the shorter one's end, read as ``ref_end``/``art_end``), or ``None`` when they agree."""
    step = next((j for j, (a, b) in enumerate(zip(ref_gen, art_gen)) if a != b), None)
    if step is None and len(ref_gen) != len(art_gen):
        step = min(len(ref_gen), len(art_gen))
    if step is None:
        return None
    last = position_logits(reference, ids + ref_gen[:step])[-1]
    ref_next = ref_gen[step] if step < len(ref_gen) else ref_end
    art_next = art_gen[step] if step < len(art_gen) else art_end
    return Parting(step, float(last[ref_next] - last[art_next]), float(last.abs().max()))


@torch.no_grad()
def greedy_ids(model: Any, tokenizer: Any, ids: list[int], max_new_tokens: int) -> list[int]:
    """``model``'s greedy continuation of ``ids`` (up to ``max_new_tokens``; ends with EOS when it stops)."""
    dev = next(model.parameters()).device
    x = torch.tensor([ids], device=dev)
    pad = pad_id(tokenizer)
    out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens,
                         do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=pad,
                         eos_token_id=tokenizer.eos_token_id)
    return out[0, len(ids):].tolist()


def verify_reload(reference: Any, reference_tokenizer: Any, artefact: Any, artefact_tokenizer: Any,
                  prompts: Sequence[list[Message]], *, precision: str, max_new_tokens: int,
                  what: str) -> dict[str, Any]:
    """Compare ``artefact`` (reloaded from disk) with ``reference`` (the in-memory model) on ``prompts``.

    ``precision``: the artefact's (a key of :data:`TOLERANCES`). Returns the details recorded in the
    manifest; raises :class:`VerificationFailed` on a mismatch. ``what`` names the artefact in messages.
    """
    if not prompts:
        raise VerificationFailed(f"{what}: no test prompts to verify with (the run has no test predictions).")
    held = compute_precision(reference)
    rtol = tolerance_for(precision)
    greedy_rtol = 0.0 if precision == "exact" else tolerance_for(precision, held)
    exact_ref = reference
    if precision != "exact" and held != "fp32":
        import copy

        exact_ref = copy.deepcopy(reference).float()
    was = [(m, _eval(m)) for m in (reference, exact_ref, artefact)]
    try:
        details = _compare(reference, exact_ref, reference_tokenizer, artefact, artefact_tokenizer, prompts, rtol,
                           greedy_rtol, max_new_tokens, what)
    finally:
        for m, training in was:
            m.train(training)
    return {"precision": precision, "reference_precision": held, **details}


def _compare(reference: Any, exact_ref: Any, ref_tok: Any, artefact: Any, art_tok: Any,
             prompts: Sequence[list[Message]], rtol: float, greedy_rtol: float, max_new_tokens: int,
             what: str) -> dict[str, Any]:
    worst_diff, worst_ratio, near_ties, tokens_compared = 0.0, 0.0, 0, 0
    for n, prompt in enumerate(prompts, start=1):
        text = render(ref_tok, prompt, generation_prompt=True)
        ids = ref_tok(text, add_special_tokens=False)["input_ids"]
        art_text = render(art_tok, prompt, generation_prompt=True)
        if art_text != text or art_tok(art_text, add_special_tokens=False)["input_ids"] != ids:
            raise VerificationFailed(
                f"{what}: the reloaded tokenizer or chat template encodes test prompt {n} differently from the "
                "trained model's, so the export would not see what the model was trained on.")
        ref, art = position_logits(exact_ref, ids), position_logits(artefact, ids)
        if ref.shape != art.shape:
            raise VerificationFailed(f"{what}: logits have shape {tuple(art.shape)}, expected {tuple(ref.shape)}.")
        bound = rtol * float(ref.abs().max())
        diff = float((ref - art).abs().max())
        worst_diff = max(worst_diff, diff)
        worst_ratio = max(worst_ratio, diff / max(float(ref.abs().max()), 1e-12))
        if diff > bound or (rtol == 0 and not torch.equal(ref, art)):
            raise VerificationFailed(
                f"{what}: logits differ from the in-memory model on test prompt {n}: max |Δ| = {diff:.3g}, "
                f"allowed {bound:.3g} (rtol {rtol:g} of max |logit|). The artefact is not the evaluated model; "
                "it was discarded.")
        if not generates_text(reference):  # e.g. a classification head: its class logits were compared above
            continue
        ref_gen = greedy_ids(reference, ref_tok, ids, max_new_tokens)
        art_gen = greedy_ids(artefact, art_tok, ids, max_new_tokens)
        parting = greedy_parting(reference, ids, ref_gen, art_gen, ref_tok.eos_token_id, art_tok.eos_token_id)
        tokens_compared += len(ref_gen) if parting is None else parting.step
        if parting is None:
            continue
        step, margin = parting.step, parting.margin
        if margin > greedy_rtol * parting.scale:
            raise VerificationFailed(
                f"{what}: greedy output differs from the in-memory model on test prompt {n} at token {step + 1} "
                f"({ref_tok.decode(ref_gen)!r} vs {art_tok.decode(art_gen)!r}; logit margin {margin:.3g} is no "
                f"near-tie at rtol {greedy_rtol:g}). The artefact is not the evaluated model; it was discarded.")
        near_ties += 1
    return {"prompts": len(prompts), "logits_rtol": rtol, "greedy_rtol": greedy_rtol, "max_abs_logit_diff": worst_diff,
            "max_rel_logit_diff": worst_ratio, "greedy_tokens_matched": tokens_compared,
            "greedy_near_ties": near_ties, "tokenizer": "identical"}
