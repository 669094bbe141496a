"""Shared loading for Hugging Face causal LMs held in a local folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftframe.errors import ConfigError

DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
          "fp16": "float16", "float16": "float16"}


def torch_dtype(dtype: Any) -> Any:
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype or torch.float32
    if dtype not in DTYPES:
        raise ConfigError(f"model dtype {dtype!r} is not one of {', '.join(DTYPES)}.")
    return getattr(torch, DTYPES[dtype])


def load_hf_tokenizer(path: Path) -> Any:
    """The tokenizer of the model folder ``path`` (a pad token added if it has none; a chat template required)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"{path}: the tokenizer has no chat template; ftframe trains and predicts through "
                                 f"the model's chat template. Use an instruct/chat model or add chat_template.jinja.")
    return tokenizer


def load_hf_folder(path: Path, dtype: Any) -> tuple[Any, Any]:
    """Model (eval mode) and tokenizer from ``path``; the tokenizer gets a pad token if it has none."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_hf_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype))
    model.eval()
    return model, tokenizer
