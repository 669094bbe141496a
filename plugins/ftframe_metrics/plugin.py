"""Entry point of the first-party metrics."""

from ftframe import hookimpl
from ftframe_metrics.classification import Accuracy, MacroF1


@hookimpl
def ftframe_metrics():
    return [MacroF1, Accuracy]
