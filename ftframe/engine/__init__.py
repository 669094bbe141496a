"""The Lightning engine. Public names for backends: fit_local, LocalPredictor, TrainHyperparams, TrainJob."""

from ftframe.engine.fit import FitResult, fit_local
from ftframe.engine.hparams import TrainHyperparams
from ftframe.engine.job import TrainJob
from ftframe.engine.predict import LocalPredictor

__all__ = ["FitResult", "LocalPredictor", "TrainHyperparams", "TrainJob", "fit_local"]
