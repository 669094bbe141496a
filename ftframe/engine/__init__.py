"""The Lightning engine and the backend toolkit: everything a backend, objective or exporter plugin uses
from the engine is exported here, and plugins import it from here only (``tests/unit/test_toolkit.py``
checks the first-party ones). docs/plugins/writing.md ("The backend toolkit") documents each name.

- training: :class:`TrainJob` (what a backend is given), :class:`TrainHyperparams`, :func:`fit_local`
  (the Lightning loop) and its :class:`FitResult`; :class:`CausalLMModule`, the objective to subclass,
  with :func:`causal_lm_loss` and :func:`sequence_logprobs` for its loss;
- models: :func:`load_pretrained` / :func:`load_tokenizer` (the one loader of a Hugging Face folder),
  :func:`torch_dtype` and :data:`DTYPES`;
- data: :func:`encode` (chat template + loss mask, :class:`Encoded`), :func:`render`, :func:`prompt_ids`,
  :func:`pad_id`, :func:`collate`, :class:`EncodedDataset`;
- prediction: :class:`LocalPredictor`, :func:`evaluating`; :func:`check_schema` for JSON schemas;
- verification of exports: :func:`verify_reload`, :func:`verification_prompts`, :func:`position_logits`,
  :func:`greedy_ids`, :func:`greedy_parting`, :func:`generates_text`, :func:`compute_precision`,
  :class:`VerifyOptions`, :class:`VerificationFailed`.

Each name is imported from its module on first use (PEP 562 ``__getattr__``), so ``from ftframe.engine
import TrainHyperparams`` — what a backend's ``Config`` needs — loads no torch or Lightning; the training
names load them when a job asks for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftframe.engine.chat import Encoded, encode, pad_id, prompt_ids, render
    from ftframe.engine.constrain import check_schema
    from ftframe.engine.data import EncodedDataset, collate
    from ftframe.engine.fit import FitResult, fit_local
    from ftframe.engine.hparams import TrainHyperparams
    from ftframe.engine.job import TrainJob
    from ftframe.engine.loading import DTYPES, load_pretrained, load_tokenizer, torch_dtype
    from ftframe.engine.module import CausalLMModule, causal_lm_loss, sequence_logprobs
    from ftframe.engine.predict import LocalPredictor, evaluating
    from ftframe.engine.verify import (
        compute_precision,
        generates_text,
        greedy_ids,
        greedy_parting,
        position_logits,
        verification_prompts,
        verify_reload,
    )
    from ftframe.engine.verify_options import VerificationFailed, VerifyOptions

_MODULES = {
    "ftframe.engine.chat": ("Encoded", "encode", "pad_id", "prompt_ids", "render"),
    "ftframe.engine.constrain": ("check_schema",),
    "ftframe.engine.data": ("EncodedDataset", "collate"),
    "ftframe.engine.fit": ("FitResult", "fit_local"),
    "ftframe.engine.hparams": ("TrainHyperparams",),
    "ftframe.engine.job": ("TrainJob",),
    "ftframe.engine.loading": ("DTYPES", "load_pretrained", "load_tokenizer", "torch_dtype"),
    "ftframe.engine.module": ("CausalLMModule", "causal_lm_loss", "sequence_logprobs"),
    "ftframe.engine.predict": ("LocalPredictor", "evaluating"),
    "ftframe.engine.verify": ("compute_precision", "generates_text", "greedy_ids", "greedy_parting",
                              "position_logits", "verification_prompts", "verify_reload"),
    "ftframe.engine.verify_options": ("VerificationFailed", "VerifyOptions"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}
__all__ = [
    "DTYPES",
    "CausalLMModule",
    "Encoded",
    "EncodedDataset",
    "FitResult",
    "LocalPredictor",
    "TrainHyperparams",
    "TrainJob",
    "VerificationFailed",
    "VerifyOptions",
    "causal_lm_loss",
    "check_schema",
    "collate",
    "compute_precision",
    "encode",
    "evaluating",
    "fit_local",
    "generates_text",
    "greedy_ids",
    "greedy_parting",
    "load_pretrained",
    "load_tokenizer",
    "pad_id",
    "position_logits",
    "prompt_ids",
    "render",
    "sequence_logprobs",
    "torch_dtype",
    "verification_prompts",
    "verify_reload",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'ftframe.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
