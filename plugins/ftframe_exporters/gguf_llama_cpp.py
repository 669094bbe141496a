"""llama.cpp (through ``llama-cpp-python``) as the judge of a GGUF export: it loads the file, quantises it
with its own quantiser, and answers the verification prompts; this module compares those answers with
ftframe's.

Why llama.cpp's quantiser rather than ``gguf``'s: the ``gguf`` package quantises only the simple block types
(Q8_0, Q4_0/1, Q5_0/1) in numpy, and has no quantiser for the k-quants (Q4_K_M, Q5_K_M, Q6_K) people run;
llama.cpp's ``llama_model_quantize`` is the reference ``llama-quantize`` (its per-tensor type mix for the
``_M`` types, its fallbacks for rows that do not fit a block size), written in C and multi-threaded, and it
is installed anyway for the verification.

Comparisons (details land in the manifest):

- **template and tokens**: the GGUF's chat template, rendered by llama-cpp-python's chat formatter, gives
  ftframe's prompt text, and llama.cpp tokenises it (``add_special`` as the file says, special tokens
  parsed — what its chat path does) to exactly ftframe's ids; so does llama.cpp's probe text;
- **logits** at every prompt position against ftframe's fp32 reference: ``max |Δ| / max |logit|``;
- **greedy answers** (``verify_tokens`` tokens): for f32/f16 identical to ftframe's, except where ftframe's
  own top-2 margin at the parting token is a near-tie within the precision's tolerance (counted); for
  quantised files the agreement is reported (answers identical, tokens before the first parting);
- **perplexity** on the first ``ppl_examples`` test examples (prompt + gold answer, the answer tokens as
  training weighs them): ``ppl_gguf / ppl_ftframe - 1`` must stay within the type's stated bound.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftframe.api import Message, Prediction
from ftframe.engine import VerificationFailed
from ftframe.errors import FtframeError

INSTALL_HINT = ("pip install 'ftframe[gguf]' (llama-cpp-python; builds llama.cpp from source once, a few "
                "minutes; `make install` does it)")


def llama_cpp_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


@contextlib.contextmanager
def llama_log() -> Iterator[list[str]]:
    """Collect llama.cpp's warning and error lines (its own reason when it refuses a file) instead of
    printing them; llama-cpp-python's logger is put back afterwards."""
    import llama_cpp
    import llama_cpp._logger as lcpp_logger

    lines: list[str] = []

    @llama_cpp.llama_log_callback
    def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level == 4:  # GGML_LOG_LEVEL_ERROR in ggml.h (llama-cpp-python's _logger.py numbers the older enum)
            lines.append(text.decode("utf-8", "replace").strip())

    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    try:
        yield lines
    finally:
        llama_cpp.llama_log_set(lcpp_logger.llama_log_callback, ctypes.c_void_p(0))


def quantize(src: Path, dest: Path, tensor_type: str, *, threads: int) -> None:
    """Quantise the f32 GGUF ``src`` into ``dest`` with llama.cpp's ``llama_model_quantize``."""
    import gguf
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(getattr(gguf.LlamaFileType, "MOSTLY_" + tensor_type.upper()))
    params.nthread = threads
    with llama_log() as log:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dest).encode(), ctypes.byref(params))
    if rc != 0:
        raise FtframeError(f"exporter 'gguf': llama.cpp could not quantise to {tensor_type}: "
                           + ("; ".join(log[-3:]) or f"llama_model_quantize returned {rc}"))


@contextlib.contextmanager
def reference_kernels() -> Iterator[None]:
    """Models loaded inside run on llama.cpp's reference CPU kernels: ``use_extra_bufts`` off, as
    ``llama-cli --no-repack`` does, so no weights are repacked into AMX or interleaved AVX layouts.

    Why: those layouts are per-CPU speed-ups of the same file, and the judge should not depend on the CPU
    the export ran on (the same file gets the same verification numbers on every x86 machine); and
    llama.cpp's AMX path (compiled in on Xeons with AMX) crashes the process (SIGSEGV) evaluating Q8_0
    weights narrower than its tiles. llama-cpp-python's ``Llama`` has no argument for the flag; it takes its
    model parameters from ``llama_model_default_params``, which is wrapped here while the model loads."""
    import llama_cpp.llama as lcpp_llama

    bindings = lcpp_llama.llama_cpp
    defaults = bindings.llama_model_default_params

    def without_extra_buffers() -> Any:
        params = defaults()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = without_extra_buffers
    try:
        yield
    finally:
        bindings.llama_model_default_params = defaults


@dataclass
class LlamaCpp:
    """A GGUF file loaded by llama.cpp, with full logits kept for every evaluated position."""

    llm: Any

    @classmethod
    def load(cls, path: Path, *, n_ctx: int, threads: int, what: str) -> LlamaCpp:
        import llama_cpp

        with llama_log() as log, reference_kernels():
            try:
                llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_batch=min(n_ctx, 512), n_threads=threads,
                                      logits_all=True, verbose=False,
                                      type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
            except (ValueError, RuntimeError) as exc:
                reason = "; ".join(line for line in log if line) or str(exc)
                raise VerificationFailed(f"{what}: llama.cpp refuses to load the file ({reason}). No GGUF runtime "
                                         "would run it; it was discarded.") from exc
        return cls(llm)

    def close(self) -> None:
        self.llm.close()

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.llm.metadata)

    def tokenize(self, text: str, *, special: bool = True, add_special: bool = True) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=special))

    def logits(self, ids: Sequence[int]) -> Any:
        """``(len(ids), vocab)`` float32 logits of ``ids`` evaluated from an empty context."""
        import numpy as np

        self.llm.reset()
        self.llm.eval(list(ids))
        return np.array(self.llm.scores[: len(ids)], dtype=np.float32)

    def is_eog(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))

    def greedy(self, ids: Sequence[int], max_new_tokens: int) -> list[int]:
        """Argmax decoding from ``ids``, stopping at an end-of-generation token (not included)."""
        import numpy as np

        self.llm.reset()
        self.llm.eval(list(ids))
        out: list[int] = []
        for _ in range(max_new_tokens):
            token = int(np.argmax(self.llm.scores[self.llm.n_tokens - 1]))
            if self.is_eog(token):
                break
            out.append(token)
            self.llm.eval([token])
        return out

    def chat_prompt(self, messages: Sequence[Message]) -> str:
        """The prompt llama-cpp-python's chat path renders from the file's own chat template."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        md = self.metadata
        template = md.get("tokenizer.chat_template")
        if not template:
            raise VerificationFailed("the GGUF has no tokenizer.chat_template; llama.cpp's chat path would guess one.")
        vocab = self.llm
        bos = vocab.detokenize([vocab.token_bos()], special=True).decode() if vocab.token_bos() >= 0 else ""
        eos = vocab.detokenize([vocab.token_eos()], special=True).decode() if vocab.token_eos() >= 0 else ""
        formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        plain = [{k: v for k, v in m.items() if k != "weight"} for m in messages]
        return formatter(messages=plain).prompt

    def chat_answer(self, messages: Sequence[Message], max_new_tokens: int) -> str:
        """``create_chat_completion`` at temperature 0: the answer a llama-cpp-python user gets."""
        plain = [{k: v for k, v in m.items() if k != "weight"} for m in messages]
        res = self.llm.create_chat_completion(messages=plain, temperature=0.0, top_k=1, repeat_penalty=1.0,
                                              max_tokens=max_new_tokens, seed=0)
        return str(res["choices"][0]["message"]["content"] or "")


def _log_softmax(x: Any) -> Any:
    import numpy as np

    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _nll(logits: Any, ids: Sequence[int], labels: Sequence[int]) -> tuple[float, int]:
    """Summed negative log-likelihood of the labelled tokens (position j predicts token j+1)."""
    logp = _log_softmax(logits)
    total, count = 0.0, 0
    for j in range(len(ids) - 1):
        if labels[j + 1] != -100:
            total -= float(logp[j, ids[j + 1]])
            count += 1
    return total, count


def ppl_examples(predictions: Sequence[Prediction], n: int) -> list[list[Message]]:
    """The first ``n`` test examples with a gold answer, as prompt + assistant(gold) conversations."""
    out: list[list[Message]] = []
    for p in predictions:
        if p.gold:
            out.append([*p.prompt, {"role": "assistant", "content": p.gold}])
        if len(out) == n:
            break
    return out


def compare(runtime: LlamaCpp, reference: Any, tokenizer: Any, prompts: Sequence[list[Message]],
            examples: Sequence[list[Message]], *, exact: bool, rtol: float, max_new_tokens: int,
            max_ppl_increase: float, what: str) -> dict[str, Any]:
    """Compare llama.cpp's answers on ``prompts`` and perplexity on ``examples`` with ``reference`` (ftframe's
    model in fp32). ``exact``: greedy answers must be identical (f32/f16) up to near-ties within ``rtol``."""
    import torch

    from ftframe.engine import encode, greedy_ids, greedy_parting, position_logits, prompt_ids, render
    from ftframe_exporters.gguf_writer import CHKTXT

    if not prompts:
        raise VerificationFailed(f"{what}: no test prompts to verify with (the run has no test predictions).")
    if runtime.metadata.get("tokenizer.chat_template") != (getattr(tokenizer, "chat_template", None) or None):
        raise VerificationFailed(f"{what}: the file's chat template is not the one the model was trained with.")
    if runtime.tokenize(CHKTXT, special=False, add_special=False) != tokenizer.encode(CHKTXT, add_special_tokens=False):
        raise VerificationFailed(f"{what}: llama.cpp tokenises its probe text differently from the trained tokenizer "
                                 "(tokenizer.ggml.pre or the vocabulary is wrong).")
    worst_rel, tokens_matched, tokens_total, near_ties, same_answers, chat_same = 0.0, 0, 0, 0, 0, 0
    partings: list[dict[str, Any]] = []
    for n, prompt in enumerate(prompts, start=1):
        text = render(tokenizer, prompt, generation_prompt=True)
        if runtime.chat_prompt(prompt) != text:
            raise VerificationFailed(f"{what}: llama.cpp's chat path renders test prompt {n} differently from ftframe's "
                                     "chat template.")
        ids = prompt_ids(tokenizer, prompt)
        if runtime.tokenize(text) != ids:
            raise VerificationFailed(f"{what}: llama.cpp tokenises test prompt {n} differently from the trained "
                                     "tokenizer (special tokens, BOS/EOS flags or the pre-tokenizer).")
        ref_logits = position_logits(reference, ids)
        art_logits = torch.from_numpy(runtime.logits(ids))
        scale = max(float(ref_logits.abs().max()), 1e-12)
        worst_rel = max(worst_rel, float((ref_logits - art_logits).abs().max()) / scale)
        # ftframe's continuation ends with the EOS it stopped at; llama.cpp's greedy stops before any
        # end-of-generation token. Both are compared as answers (up to, not including, the stop token).
        ref_gen = greedy_ids(reference, tokenizer, ids, max_new_tokens)
        cut = next((j for j, t in enumerate(ref_gen) if runtime.is_eog(t)), None)
        ref_stop = tokenizer.eos_token_id if cut is None else ref_gen[cut]
        ref_gen = ref_gen if cut is None else ref_gen[:cut]
        art_gen = runtime.greedy(ids, max_new_tokens)
        parting = greedy_parting(reference, ids, ref_gen, art_gen, ref_stop, tokenizer.eos_token_id)
        tokens_total += len(ref_gen)
        tokens_matched += len(ref_gen) if parting is None else parting.step
        answer = tokenizer.decode(ref_gen, skip_special_tokens=True)
        if parting is None:
            same_answers += 1
        else:
            step, margin = parting.step, parting.margin
            partings.append({"prompt": n, "token": step + 1, "ftframe_margin": round(margin, 4)})
            if exact:
                if margin > rtol * parting.scale:
                    raise VerificationFailed(
                        f"{what}: llama.cpp's greedy answer to test prompt {n} differs from ftframe's at token "
                        f"{step + 1} ({tokenizer.decode(art_gen)!r} vs {answer!r}; ftframe's logit margin {margin:.3g} is "
                        f"no near-tie at rtol {rtol:g}). The file is not the evaluated model; it was discarded.")
                near_ties += 1
        chat = runtime.chat_answer(prompt, max_new_tokens)
        # The chat path drops incomplete UTF-8 sequences (a decode shows them as U+FFFD) and counts max_tokens
        # after holding such bytes back, so one answer may run a token past the other: a prefix agrees.
        mine = tokenizer.decode(art_gen, skip_special_tokens=True).replace("\ufffd", "").strip()
        if chat.strip().startswith(mine) or mine.startswith(chat.strip()):
            chat_same += 1
        elif exact:
            raise VerificationFailed(f"{what}: llama-cpp-python's create_chat_completion answers test prompt {n} with "
                                     f"{chat!r}, not llama.cpp's own greedy answer; the chat path differs.")
    if exact and worst_rel > rtol:
        raise VerificationFailed(f"{what}: llama.cpp's logits differ from ftframe's by {worst_rel:.3g} of the largest "
                                 f"logit, allowed {rtol:g}. The file is not the evaluated model; it was discarded.")
    ppl = _perplexities(runtime, reference, tokenizer, examples, encode)
    details: dict[str, Any] = {
        "runtime": "llama.cpp (llama-cpp-python)", "loads": True, "prompts": len(prompts),
        "tokenizer": "identical", "chat_template": "identical", "max_rel_logit_diff": worst_rel,
        "logits_rtol": rtol if exact else None, "greedy_answers_identical": same_answers,
        "greedy_tokens_matched": tokens_matched, "greedy_tokens": tokens_total,
        "greedy_agreement": tokens_matched / tokens_total if tokens_total else 1.0,
        "greedy_near_ties": near_ties, "partings": partings, "chat_completion_matches": chat_same, **ppl,
        "max_ppl_increase": max_ppl_increase,
    }
    if ppl["ppl_increase"] is None:
        if not exact:
            raise VerificationFailed(f"{what}: no test example has a gold answer, so the quantised file's perplexity "
                                     "cannot be checked.")
    elif ppl["ppl_increase"] > max_ppl_increase:
        raise VerificationFailed(
            f"{what}: perplexity on {ppl['ppl_examples']} test examples rises from {ppl['ppl_ftframe']:.4g} to "
            f"{ppl['ppl_gguf']:.4g} (+{100 * ppl['ppl_increase']:.2f}%), more than the allowed "
            f"{100 * max_ppl_increase:g}%. Use a larger type (q8_0) or raise exporters.gguf.max_ppl_increase.")
    return details


def _perplexities(runtime: LlamaCpp, reference: Any, tokenizer: Any, examples: Sequence[list[Message]],
                  encode: Any) -> dict[str, Any]:
    from ftframe.engine import position_logits

    ref_nll = art_nll = 0.0
    count = 0
    for conv in examples:
        enc = encode(tokenizer, conv)
        ref_total, n = _nll(position_logits(reference, enc.input_ids).numpy(), enc.input_ids, enc.labels)
        art_total, _ = _nll(runtime.logits(enc.input_ids), enc.input_ids, enc.labels)
        ref_nll, art_nll, count = ref_nll + ref_total, art_nll + art_total, count + n
    if not count:
        return {"ppl_examples": 0, "ppl_ftframe": None, "ppl_gguf": None, "ppl_increase": None}
    ref_ppl, art_ppl = math.exp(ref_nll / count), math.exp(art_nll / count)
    return {"ppl_examples": len(examples), "ppl_tokens": count, "ppl_ftframe": ref_ppl, "ppl_gguf": art_ppl,
            "ppl_increase": art_ppl / ref_ppl - 1.0}
