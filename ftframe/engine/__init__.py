"""The Lightning engine. Public names for backends: fit_local, CausalLMModule (the objective to subclass),
sequence_logprobs, LocalPredictor, TrainHyperparams, TrainJob.

Each name is imported from its module on first use (PEP 562 ``__getattr__``), so ``from ftframe.engine
import TrainHyperparams`` — what a backend's ``Config`` needs — loads no torch or Lightning; the training
names load them when a job asks for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftframe.engine.fit import FitResult, fit_local
    from ftframe.engine.hparams import TrainHyperparams
    from ftframe.engine.job import TrainJob
    from ftframe.engine.module import CausalLMModule, sequence_logprobs
    from ftframe.engine.predict import LocalPredictor

_HOME = {
    "FitResult": "ftframe.engine.fit",
    "fit_local": "ftframe.engine.fit",
    "TrainHyperparams": "ftframe.engine.hparams",
    "TrainJob": "ftframe.engine.job",
    "CausalLMModule": "ftframe.engine.module",
    "sequence_logprobs": "ftframe.engine.module",
    "LocalPredictor": "ftframe.engine.predict",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'ftframe.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
