"""The one loader of a Hugging Face model folder: model sources, saved runs and exporters all use it.

Imports nothing heavy at module level (``ftframe.engine``'s names load on first use, and model sources'
``Config`` modules import this one's ``DTYPES``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftframe.errors import ConfigError

DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
          "fp16": "float16", "float16": "float16"}
"""Accepted dtype names and the torch dtype each means."""


def torch_dtype(dtype: Any) -> Any:
    """The torch dtype for a name of :data:`DTYPES`, a torch dtype, or ``None`` (fp32)."""
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype or torch.float32
    if dtype not in DTYPES:
        raise ConfigError(f"model dtype {dtype!r} is not one of {', '.join(DTYPES)}.")
    return getattr(torch, DTYPES[dtype])


def load_tokenizer(folder: Path, **kwargs: Any) -> Any:
    """The tokenizer of ``folder`` with a pad token (its eos, as training gives it, if it has none).

    A chat template is required: ftframe trains and predicts through it. ``kwargs`` go to
    ``from_pretrained`` (e.g. ``gguf_file=``).
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"{folder}: the tokenizer has no chat template; ftframe trains and predicts through "
                          f"the model's chat template. Use an instruct/chat model or add chat_template.jinja.")
    return tokenizer


def load_pretrained(folder: Path, *, dtype: Any = None, **kwargs: Any) -> tuple[Any, Any]:
    """The model (fp32 unless ``dtype``: a torch dtype or a name of :data:`DTYPES`) and its tokenizer
    (:func:`load_tokenizer`) from a Hugging Face folder, in eval mode: a causal LM, or a sequence
    classifier where the folder was saved as one (the merged weights of a ``backend.head=classifier``
    run keep their class head). ``kwargs`` go to every ``from_pretrained`` call.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    tokenizer = load_tokenizer(folder, **kwargs)
    config = AutoConfig.from_pretrained(folder, **kwargs)
    classifier = any(str(a).endswith("ForSequenceClassification") for a in config.architectures or [])
    auto = AutoModelForSequenceClassification if classifier else AutoModelForCausalLM
    model = auto.from_pretrained(folder, config=config, dtype=torch_dtype(dtype), **kwargs)
    model.eval()
    return model, tokenizer
