"""ftframe: declarative, plugin-based fine-tuning of language models.

Public API for plugin authors: :mod:`ftframe.api` (contracts), :data:`hookimpl`, :mod:`ftframe.engine`
(``fit_local``, ``LocalPredictor``, ``TrainHyperparams``) and :mod:`ftframe.testing`.
"""

from ftframe.plugins import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
