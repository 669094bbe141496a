"""Write a Llama causal LM and its byte-level BPE tokenizer as a GGUF file (f32 or f16) with the ``gguf``
package's writer, tensor-name map and constants — the metadata llama.cpp needs to load and tokenise it.

Why hand-written: llama.cpp's ``convert_hf_to_gguf.py`` is a script in the llama.cpp repository (plus its
``conversion/`` package), not part of the ``gguf`` package, and needs a checkout with its own requirements.
What a Llama model needs from it is small; this module follows it:

- hyperparameters under ``llama.*`` keys; q/k projection rows permuted to llama.cpp's rotary layout
  (``permute``, as ``LlamaModel.permute`` there; transformers reverses it when it loads);
- the vocabulary as ``get_vocab_base`` builds it: tokens, token types (added special tokens and tokens that
  look like ``<|...|>`` are CONTROL, other added tokens USER_DEFINED, holes ``[PADn]`` UNUSED), merges;
- ``tokenizer.ggml.pre`` — llama.cpp picks its pre-tokenizer regex by this name and refuses a file whose
  name it does not know. Taken from the model's source GGUF when it came from one; otherwise derived like
  ``get_vocab_base_pre``: the token ids of llama.cpp's probe text, hashed, looked up among the tokenizers
  this exporter accepts; failing that, from the tokenizer's pre-tokenizer when it is exactly one whose
  regex llama.cpp has under a name (byte-level GPT-2, SmolLM's digits + GPT-2, Llama 3's split);
- special token ids, ``add_bos_token``/``add_eos_token`` (ftframe renders the chat template and tokenises
  it without adding special tokens, so both are false unless the source GGUF says otherwise — a template
  that needs BOS writes it itself), and the chat template the model was trained with.

Whether llama.cpp really tokenises like ftframe is not assumed: the exporter's verification checks it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from ftframe.errors import FtframeError

CHKTXT = ('\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ '
          '🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ '
          '------======= нещо на Български \'\'\'\'\'\'```````""""......!!!!!!?????? I\'ve been \'told he\'s there, '
          '\'RE you sure? \'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL')
"""llama.cpp's probe text (``get_vocab_base_pre``): its token ids identify a pre-tokenizer + vocabulary."""

PRE_BY_HASH = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # HuggingFaceTB/SmolLM(2)
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",  # openai-community/gpt2
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # meta-llama/Meta-Llama-3-8B
}
"""The entries of llama.cpp's hash table for byte-level BPE tokenizers of Llama-architecture models."""

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
IGNORES_MERGES = {"gpt-2": False, "smollm": False, "llama-bpe": True}
"""llama.cpp's ``ignore_merges`` for each pre-tokenizer written here (``llama-vocab.cpp``)."""


def permute(weights: Any, n_head: int, n_head_kv: int | None = None) -> Any:
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


@dataclass
class Vocab:
    """The tokenizer as GGUF holds it."""

    tokens: list[str]
    types: list[int]
    merges: list[str]
    pre: str
    special_ids: dict[str, int]
    add_bos: bool = False
    add_eos: bool = False
    chat_template: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    """Where ``pre``, token types and the add-token flags came from (recorded in the manifest)."""


def _spec(tokenizer: Any) -> dict[str, Any]:
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "BPE" or spec["model"].get("byte_fallback") or spec.get("normalizer"):
        raise FtframeError("exporter 'gguf' writes byte-level BPE tokenizers only (no normaliser, no byte fallback); "
                           f"this one is {spec['model']['type']}. Use the 'merged' exporter and llama.cpp's "
                           "convert_hf_to_gguf.py.")
    return spec


def pre_from_structure(pre_tokenizer: dict[str, Any] | None) -> str | None:
    """The llama.cpp pre-tokenizer whose regex is exactly this Hugging Face pre-tokenizer, or None."""
    p = pre_tokenizer or {}
    if p.get("type") == "ByteLevel" and p.get("use_regex", True) and not p.get("add_prefix_space"):
        return "gpt-2"  # ByteLevel's built-in split is GPT-2's regex, which is llama.cpp's "gpt-2"
    steps = p.get("pretokenizers") if p.get("type") == "Sequence" else None
    if not steps or len(steps) != 2 or steps[1].get("type") != "ByteLevel" or steps[1].get("add_prefix_space"):
        return None
    first, byte_level = steps
    if first.get("type") == "Digits" and first.get("individual_digits") and byte_level.get("use_regex", True):
        return "smollm"  # each digit alone, then GPT-2's regex
    if (first.get("type") == "Split" and (first.get("pattern") or {}).get("Regex") == LLAMA3_SPLIT
            and str(first.get("behavior")).lower() == "isolated" and not byte_level.get("use_regex", True)):
        return "llama-bpe"
    return None


def derive_pre(tokenizer: Any, spec: dict[str, Any]) -> tuple[str, str]:
    """``(pre, how)``: by llama.cpp's probe-text hash, else by the pre-tokenizer's structure; raises otherwise."""
    digest = sha256(str(tokenizer.encode(CHKTXT)).encode()).hexdigest()
    if digest in PRE_BY_HASH:
        return PRE_BY_HASH[digest], "probe-text hash (as convert_hf_to_gguf.py)"
    pre = pre_from_structure(spec.get("pre_tokenizer"))
    if pre is None:
        raise FtframeError(f"exporter 'gguf': the tokenizer's pre-tokenizer ({spec.get('pre_tokenizer')}) is none that "
                           "llama.cpp knows by name (byte-level GPT-2, SmolLM, Llama 3), so llama.cpp would split text "
                           "differently. Use the 'merged' exporter and llama.cpp's convert_hf_to_gguf.py.")
    return pre, "pre-tokenizer structure"


def _looks_special(text: str) -> bool:
    """llama.cpp's ``does_token_look_special`` for byte-level vocabularies."""
    return (text.startswith("<|") and text.endswith("|>")) or text in ("<pad>", "<mask>")


def read_source_gguf(path: str | Path) -> dict[str, Any]:
    """The tokenizer metadata of a GGUF file (``tokenizer.ggml.*``)."""
    import gguf

    reader = gguf.GGUFReader(path)
    out: dict[str, Any] = {}
    for key in ("model", "pre", "tokens", "token_type", "add_bos_token", "add_eos_token", "add_space_prefix",
                "bos_token_id", "eos_token_id", "unknown_token_id", "padding_token_id", "eot_token_id"):
        f = reader.fields.get(f"tokenizer.ggml.{key}")
        if f is not None:
            out[key] = f.contents()
    return out


def build_vocab(tokenizer: Any, vocab_size: int, source_gguf: str | Path | None = None) -> Vocab:
    """The GGUF vocabulary of ``tokenizer``; metadata from ``source_gguf`` where its tokens are the same."""
    import gguf

    spec = _spec(tokenizer)
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = {a["id"]: a for a in spec.get("added_tokens", [])}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:  # the model's embedding is larger than the vocabulary: llama.cpp's padding
            tokens.append(f"[PAD{i}]")
            types.append(int(gguf.TokenType.UNUSED))
            continue
        tokens.append(by_id[i])
        a = added.get(i)
        types.append(int(gguf.TokenType.NORMAL) if a is None else
                     int(gguf.TokenType.CONTROL) if a.get("special") or _looks_special(by_id[i]) else
                     int(gguf.TokenType.USER_DEFINED))
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        special = gguf.SpecialVocab(Path(folder), load_merges=True, n_vocab=len(tokens))
    if not special.merges:
        raise FtframeError("exporter 'gguf': the tokenizer has no BPE merges to write.")
    ids = {name: int(getattr(tokenizer, f"{attr}_token_id")) for name, attr in
           (("bos", "bos"), ("eos", "eos"), ("unk", "unk"), ("pad", "pad"))
           if getattr(tokenizer, f"{attr}_token_id", None) is not None}
    vocab = Vocab(tokens, types, list(special.merges), "", ids, chat_template=getattr(tokenizer, "chat_template", None))
    src = read_source_gguf(source_gguf) if source_gguf else None
    if src is not None and src.get("model") == "gpt2" and src.get("tokens") == tokens and src.get("pre"):
        vocab.pre = str(src["pre"])
        vocab.types = [int(t) for t in src.get("token_type") or types]
        vocab.add_bos = bool(src.get("add_bos_token", False))
        vocab.add_eos = bool(src.get("add_eos_token", False))
        for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unknown_token_id"),
                          ("pad", "padding_token_id")):
            if key in src:
                vocab.special_ids[name] = int(src[key])
        vocab.source = {"metadata": "source GGUF", "path": str(source_gguf)}
    else:
        vocab.pre, how = derive_pre(tokenizer, spec)
        vocab.source = {"metadata": "derived", "pre": how}
        if src is not None:
            vocab.source["source_gguf_unused"] = f"{source_gguf}: its vocabulary differs from the trained tokenizer's"
    if vocab.pre in IGNORES_MERGES and bool(spec["model"].get("ignore_merges")) != IGNORES_MERGES[vocab.pre]:
        raise FtframeError(f"exporter 'gguf': the tokenizer's ignore_merges={spec['model'].get('ignore_merges')} differs "
                           f"from llama.cpp's for pre-tokenizer {vocab.pre!r}; llama.cpp would tokenise differently.")
    return vocab


def _add_vocab(writer: Any, vocab: Vocab) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    for name, token_id in vocab.special_ids.items():
        getattr(writer, f"add_{name}_token_id")(token_id)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)


def _add_hparams(writer: Any, config: Any, name: str, tensor_type: str) -> None:
    import gguf

    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    params = getattr(config, "rope_parameters", None) or {}
    writer.add_name(name)
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_head_count_kv(int(config.num_key_value_heads or config.num_attention_heads))
    if head_dim * config.num_attention_heads != config.hidden_size:  # as the converter: only when not implied
        writer.add_key_length(int(head_dim))
        writer.add_value_length(int(head_dim))
    writer.add_rope_dimension_count(int(head_dim))
    writer.add_rope_freq_base(float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(int(config.vocab_size))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if tensor_type == "f32" else gguf.LlamaFileType.MOSTLY_F16)


def write_gguf(model: Any, vocab: Vocab, path: Path, *, tensor_type: str, name: str) -> int:
    """Write ``model`` (a plain fp32 Llama causal LM) with ``vocab`` to ``path`` as ``tensor_type``
    (``f32`` or ``f16``; norm weights stay f32 as llama.cpp keeps them). Returns the tensor count."""
    import gguf
    import numpy as np
    import torch

    config = model.config
    check_supported(config)
    n_head, n_kv = int(config.num_attention_heads), int(config.num_key_value_heads or config.num_attention_heads)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, int(config.num_hidden_layers))
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    _add_hparams(writer, config, name, tensor_type)
    _add_vocab(writer, vocab)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
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
        if tensor_type == "f16" and data.ndim == 2:
            data = data.astype(np.float16)
        writer.add_tensor(gguf_name, np.ascontiguousarray(data))
        count += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return count
