"""A GGUF file (f32 or f16) of the merged model, for llama.cpp-family runtimes, verified by reloading it
with transformers' ``gguf_file=`` loader.

Why hand-written: llama.cpp's ``convert_hf_to_gguf.py`` is a script in the llama.cpp repository, not part
of the ``gguf`` package, and needs a checkout plus its own requirements. What a Llama model needs from it
is small, and this module does just that with the ``gguf`` package's own writer, tensor-name map
(``gguf.get_tensor_name_map``) and special-vocabulary reader (``gguf.SpecialVocab``):

- hyperparameters under ``llama.*`` keys (what transformers' GGUF loader maps back to ``LlamaConfig``);
- q/k projection rows permuted the way llama.cpp's rotary embedding expects (``permute`` below, as in
  ``LlamaModel.permute`` of convert_hf_to_gguf.py; transformers reverses it when it loads);
- the byte-level BPE vocabulary (``tokenizer.ggml.model = gpt2``) with token types, merges, special
  token ids and the chat template.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftframe.api import ExportContext, Exporter, ExportResult
from ftframe.config import one_of
from ftframe.engine.saved_run import load_pretrained
from ftframe.engine.verify_options import VerifyOptions
from ftframe.errors import FtframeError
from ftframe.io import atomic_path
from ftframe_exporters.weights import local_model, merged_copy, verify_artefact

if TYPE_CHECKING:  # numpy, torch and gguf are imported when exporting
    import numpy as np

OUTTYPES = ("f32", "f16")
PRECISION = {"f32": "fp32", "f16": "fp16"}


@dataclass
class GgufConfig(VerifyOptions):
    filename: str = "model-{outtype}.gguf"
    """File name below the run dir (``{outtype}`` is replaced)."""
    outtype: str = "f16"
    """Tensor type of the weight matrices: ``f32`` or ``f16`` (norm weights stay f32, as llama.cpp keeps them)."""

    def __post_init__(self) -> None:
        one_of("exporters.gguf.outtype", self.outtype, OUTTYPES)


def permute(weights: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """Reorder q/k projection rows from Hugging Face's rotary layout to llama.cpp's (interleaved pairs)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def check_supported(config: Any) -> None:
    """Only plain Llama models: the tensors and keys written here are exactly those of that architecture."""
    problems = []
    if getattr(config, "model_type", None) != "llama":
        problems.append(f"model_type is {getattr(config, 'model_type', None)!r}, not 'llama'")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        problems.append("the model has bias terms in attention or MLP layers")
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        problems.append(f"rope scaling {rope.get('rope_type', rope.get('type'))!r} is not written by this exporter")
    if problems:
        raise FtframeError("exporter 'gguf' writes Llama-architecture models only: " + "; ".join(problems)
                           + ". Use the 'merged' exporter and llama.cpp's convert_hf_to_gguf.py for this model.")


def _rope_theta(config: Any) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    return float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def _add_hparams(writer: Any, config: Any, name: str, outtype: str) -> None:
    import gguf

    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name(name)
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_head_count_kv(int(config.num_key_value_heads or config.num_attention_heads))
    writer.add_rope_dimension_count(int(head_dim))
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(int(config.vocab_size))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if outtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)


def _add_tokenizer(writer: Any, tokenizer: Any, vocab_size: int) -> None:
    """Byte-level BPE vocabulary, token types, merges, special ids and chat template."""
    import gguf

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    pre = spec.get("pre_tokenizer") or {}
    if spec["model"]["type"] != "BPE" or pre.get("type") != "ByteLevel" or not pre.get("use_regex", True):
        raise FtframeError("exporter 'gguf' writes byte-level BPE tokenizers with the GPT-2 pre-tokenizer only; "
                           f"this one is {spec['model']['type']} with pre-tokenizer {pre.get('type')!r}. "
                           "Use the 'merged' exporter and llama.cpp's convert_hf_to_gguf.py.")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = {a["id"]: a for a in spec.get("added_tokens", [])}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:  # the model's embedding is larger than the vocabulary: llama.cpp's padding
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(by_id[i])
            a = added.get(i)
            types.append(gguf.TokenType.NORMAL if a is None else
                         gguf.TokenType.CONTROL if a.get("special") else gguf.TokenType.USER_DEFINED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt2")  # ByteLevel with its default regex is GPT-2's split, checked above
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        special = gguf.SpecialVocab(Path(folder), load_merges=True, n_vocab=len(tokens))
    if not special.merges:
        raise FtframeError("exporter 'gguf': the tokenizer has no BPE merges to write.")
    special.add_to_gguf(writer, quiet=True)
    if not special.chat_template and getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)


def write_gguf(model: Any, tokenizer: Any, path: Path, *, outtype: str, name: str) -> int:
    """Write ``model`` (a plain fp32 Llama causal LM) and ``tokenizer`` to ``path``; returns the tensor count."""
    import gguf
    import numpy as np
    import torch

    config = model.config
    check_supported(config)
    n_head, n_kv = int(config.num_attention_heads), int(config.num_key_value_heads or config.num_attention_heads)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, int(config.num_hidden_layers))
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    _add_hparams(writer, config, name, outtype)
    _add_tokenizer(writer, tokenizer, int(config.vocab_size))
    tied = bool(getattr(config, "tie_word_embeddings", False))
    count = 0
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and tied:
            continue  # a GGUF without output.weight means tied embeddings (llama.cpp and transformers agree)
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise FtframeError(f"exporter 'gguf': no GGUF name for tensor {hf_name!r}; the model is not plain Llama.")
        data = tensor.detach().to(torch.float32).cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = permute(data, n_head, n_head)
        elif hf_name.endswith("k_proj.weight"):
            data = permute(data, n_head, n_kv)
        if outtype == "f16" and data.ndim == 2:
            data = data.astype(np.float16)
        writer.add_tensor(gguf_name, np.ascontiguousarray(data))
        count += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return count


class GgufExporter(Exporter):
    """Merges the adapter, writes a GGUF file (f32/f16), reloads it with transformers' ``gguf_file=``
    loader and checks it against the in-memory model. Refuses a ``backend.head=classifier`` run before
    it trains (GGUF holds causal LMs)."""

    name = "gguf"
    accepts = frozenset({"adapter", "full"})
    Config = GgufConfig

    @classmethod
    def config_problems(cls, config: Any) -> list[str]:
        if str((config.get("backend") or {}).get("head") or "lm") == "classifier":
            return [("backend.head=classifier trains a classification head, which GGUF (a causal-LM format) "
                     "has no place for. Remove gguf from exporters; adapter and merged keep the head.")]
        return []

    def export(self, ctx: ExportContext) -> ExportResult:
        model, tokenizer = local_model(ctx, self.name)
        check_supported(getattr(model, "config", None))
        out = ctx.run_dir / self.config.filename.format(outtype=self.config.outtype)
        title = f"{(ctx.config.get('task') or {}).get('name', 'model')} (ftframe)"
        with atomic_path(out) as tmp:
            merged = merged_copy(model)
            tensors = write_gguf(merged, tokenizer, tmp, outtype=self.config.outtype, name=title)
            del merged
            reloaded, reloaded_tok = load_pretrained(tmp.parent, gguf_file=tmp.name)
            details = verify_artefact(ctx, model, tokenizer, reloaded, reloaded_tok,
                                      precision=PRECISION[self.config.outtype], options=self.config,
                                      what=f"gguf export {out}")
        return ExportResult([str(out)], verified=True,
                            details={"outtype": self.config.outtype, "tensors": tensors, "verification": details})
