"""The Lightning engine. Public names for backends: fit_local, CausalLMModule (the objective to subclass),
sequence_logprobs, LocalPredictor, TrainHyperparams, TrainJob."""

from ftframe.engine.fit import FitResult, fit_local
from ftframe.engine.hparams import TrainHyperparams
from ftframe.engine.job import TrainJob
from ftframe.engine.module import CausalLMModule, sequence_logprobs
from ftframe.engine.predict import LocalPredictor

__all__ = ["CausalLMModule", "FitResult", "LocalPredictor", "TrainHyperparams", "TrainJob", "fit_local",
           "sequence_logprobs"]
