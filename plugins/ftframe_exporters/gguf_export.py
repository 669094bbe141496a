"""A GGUF file of the merged model — f32, f16 or a quantised type people deploy (q8_0, q6_k, q5_k_m, q4_k_m,
q4_0) — verified by llama.cpp itself, with an Ollama Modelfile beside it.

The file is written with the ``gguf`` package (:mod:`ftframe_exporters.gguf_writer`); quantised types are
made from an f32 intermediate by llama.cpp's own quantiser (:mod:`ftframe_exporters.gguf_llama_cpp` says
why). Then llama.cpp loads the written file and must tokenise, render the chat template and answer the
first test prompts as ftframe does (f32/f16: identical greedy answers; quantised: agreement reported,
perplexity on the test split within the type's stated bound). A file llama.cpp refuses, or that answers
differently, fails the export and is deleted, Modelfile included.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftframe.api import ExportContext, Exporter, ExportResult
from ftframe.config import one_of
from ftframe.engine import VerifyOptions
from ftframe.errors import ConfigError, FtframeError
from ftframe.io import atomic_path
from ftframe_exporters.weights import local_model, merged_copy

TYPES = ("f32", "f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0")
MAX_PPL_INCREASE = {"f32": 0.001, "f16": 0.002, "q8_0": 0.01, "q6_k": 0.02, "q5_k_m": 0.04, "q4_k_m": 0.08,
                    "q4_0": 0.15}
"""Default bound on ``ppl_gguf / ppl_ftframe - 1`` on the test split, per type (measured margins in
docs/exporting-and-serving.md)."""
LOGITS_RTOL = {"f32": 1e-4, "f16": 5e-3}
"""f32/f16 files: llama.cpp's logits within this fraction of the largest logit, greedy answers identical
(a near-tie at the parting token within it is accepted and counted)."""


@dataclass
class GgufConfig(VerifyOptions):
    type: str = "f16"
    """Tensor type: ``f32``, ``f16`` (norm weights stay f32, as llama.cpp keeps them) or a llama.cpp quantisation:
    ``q8_0``, ``q6_k``, ``q5_k_m``, ``q4_k_m``, ``q4_0``."""
    filename: str = "model-{type}.gguf"
    """File name below the run dir (``{type}`` is replaced)."""
    modelfile: bool = True
    """Write an Ollama Modelfile beside the file (``<file stem>.Modelfile``)."""
    ppl_examples: int = 32
    """Test examples (prompt + gold answer) the perplexity of the file is compared on."""
    max_ppl_increase: float | None = None
    """Allowed relative perplexity increase over ftframe's model; default per type (q8_0 1%, q4_k_m 8%, ...)."""

    def __post_init__(self) -> None:
        self.type = str(self.type).lower()
        one_of("exporters.gguf.type", self.type, TYPES)
        if self.max_ppl_increase is not None and not self.max_ppl_increase >= 0:
            raise ConfigError(f"exporters.gguf.max_ppl_increase: {self.max_ppl_increase} must be >= 0 "
                              "(a relative increase: 0.01 allows 1%).")

    @property
    def ppl_bound(self) -> float:
        return MAX_PPL_INCREASE[self.type] if self.max_ppl_increase is None else float(self.max_ppl_increase)


SOURCE_GGUF = {"smollm2": ("ftframe_models.smollm2", "gguf_path")}
"""Model sources whose base model is read from a GGUF file: ``name -> (module, function returning its path)``."""


def source_gguf(ctx: ExportContext) -> str | None:
    """The GGUF file the base model came from: ``base_model_info["gguf"]`` in the training info when the
    backend recorded it, else the file of the run's model source when it is one that loads a GGUF (the
    embedded ``smollm2``). None for models that came from elsewhere (metadata is then derived)."""
    import importlib

    info = (ctx.trained.info or {}).get("base_model_info") or {}
    path = info.get("gguf") if isinstance(info, dict) else None
    if not path:
        model = (ctx.config or {}).get("model") or {}
        where = SOURCE_GGUF.get(str(model.get("name") if isinstance(model, dict) else ""))
        if where is not None:
            try:
                path = getattr(importlib.import_module(where[0]), where[1])()
            except (ImportError, FtframeError):
                path = None
    return str(path) if path and Path(str(path)).is_file() else None


def _threads() -> int:
    import torch

    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


class GgufExporter(Exporter):
    """Merges the adapter, writes a GGUF file (f32/f16, or quantised by llama.cpp), loads it with llama.cpp and
    checks its tokens, chat template, greedy answers and perplexity against ftframe's model; writes an Ollama
    Modelfile beside it. Refuses a ``backend.head=classifier`` run, or a machine without llama-cpp-python,
    before it trains."""

    name = "gguf"
    accepts = frozenset({"adapter", "full"})
    Config = GgufConfig

    @classmethod
    def config_problems(cls, config: Any) -> list[str]:
        from ftframe_exporters.gguf_llama_cpp import INSTALL_HINT, llama_cpp_available

        problems = []
        if str((config.get("backend") or {}).get("head") or "lm") == "classifier":
            problems.append("backend.head=classifier trains a classification head, which GGUF (a causal-LM format) "
                            "has no place for. Remove gguf from exporters; adapter and merged keep the head.")
        if not llama_cpp_available():
            problems.append(f"exporter 'gguf' verifies its file with llama.cpp, which is not installed: {INSTALL_HINT}.")
        return problems

    def export(self, ctx: ExportContext) -> ExportResult:
        import copy

        from ftframe.engine import compute_precision, encode, prompt_ids, verification_prompts
        from ftframe_exporters.gguf_llama_cpp import (
            INSTALL_HINT,
            LlamaCpp,
            compare,
            llama_cpp_available,
            ppl_examples,
            quantize,
        )
        from ftframe_exporters.gguf_writer import build_vocab, check_supported, write_gguf

        if not llama_cpp_available():
            raise FtframeError(f"exporter 'gguf' verifies its file with llama.cpp, which is not installed: {INSTALL_HINT}.")
        model, tokenizer = local_model(ctx, self.name)
        check_supported(getattr(model, "config", None))
        kind = self.config.type
        out = ctx.run_dir / self.config.filename.format(type=kind)
        title = f"{(ctx.config.get('task') or {}).get('name', 'model')} (ftframe)"
        what = f"gguf export {out}"
        prompts = verification_prompts(ctx.predictions, int(self.config.verify_prompts))
        examples = ppl_examples(ctx.predictions, int(self.config.ppl_examples))
        source = source_gguf(ctx)
        started = time.perf_counter()
        with atomic_path(out) as tmp:
            vocab = build_vocab(tokenizer, int(model.config.vocab_size), source)
            merged = merged_copy(model)
            written = tmp if kind in ("f32", "f16") else tmp.with_name(tmp.name + ".f32")
            tensors = write_gguf(merged, vocab, written, tensor_type=kind if written == tmp else "f32", name=title)
            del merged
            if written != tmp:
                quantize(written, tmp, kind, threads=_threads())
                written.unlink()
            exported_s = time.perf_counter() - started
            evaluated = compute_precision(model)
            reference = model if evaluated == "fp32" else copy.deepcopy(model).float()
            training = reference.training
            reference.eval()
            longest = max([len(prompt_ids(tokenizer, p)) + int(self.config.verify_tokens) for p in prompts]
                          + [len(encode(tokenizer, c).input_ids) for c in examples])
            n_ctx = min(int(model.config.max_position_embeddings), 256 * (1 + longest // 256))
            runtime = LlamaCpp.load(tmp, n_ctx=n_ctx, threads=_threads(), what=what)
            try:
                details = compare(runtime, reference, tokenizer, prompts, examples, exact=kind in LOGITS_RTOL,
                                  rtol=LOGITS_RTOL.get(kind, 0.0), max_new_tokens=int(self.config.verify_tokens),
                                  max_ppl_increase=self.config.ppl_bound, what=what)
            finally:
                runtime.close()
                reference.train(training)
            paths = [str(out)]
            if self.config.modelfile:
                paths.append(self._write_modelfile(ctx, out, tokenizer, model.config, vocab, runtime_prompts=prompts))
        return ExportResult(paths, verified=True, details={
            "type": kind, "tensors": tensors, "bytes": out.stat().st_size, "export_seconds": round(exported_s, 1),
            "verify_seconds": round(time.perf_counter() - started - exported_s, 1), "metadata": vocab.source,
            "tokenizer_pre": vocab.pre, "verification": {**details, "reference_precision": evaluated}})

    def _write_modelfile(self, ctx: ExportContext, gguf_path: Path, tokenizer: Any, config: Any, vocab: Any, *,
                         runtime_prompts: list[Any]) -> str:
        """Measure the chat template into an Ollama TEMPLATE, check it on sample and test conversations, write it."""
        from ftframe.engine import render
        from ftframe_exporters.ollama_modelfile import (
            SAMPLE_CONVERSATIONS,
            check_template,
            go_template,
            measure_layout,
            modelfile_text,
        )

        def jinja(messages: Any, generation_prompt: bool) -> str:
            return render(tokenizer, messages, generation_prompt=generation_prompt)

        layout = measure_layout(jinja)
        template = go_template(layout)
        check_template(template, layout.default_system, jinja, [*SAMPLE_CONVERSATIONS, *runtime_prompts])
        eos = tokenizer.convert_ids_to_tokens(vocab.special_ids["eos"]) if "eos" in vocab.special_ids else None
        stops = list(dict.fromkeys(s for s in (layout.tail["assistant"].strip(), eos) if s))
        params = {"temperature": 0, "repeat_penalty": 1, "num_ctx": min(int(config.max_position_embeddings), 8192)}
        path = gguf_path.with_suffix(".Modelfile")
        with atomic_path(path) as tmp:
            tmp.write_text(modelfile_text(gguf_path.name, template, default_system=layout.default_system, stops=stops,
                                          parameters=params), encoding="utf-8")
        return str(path)
