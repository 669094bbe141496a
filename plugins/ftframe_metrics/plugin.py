"""Entry point of the first-party metrics."""

from ftframe import hookimpl
from ftframe_metrics.classification import Accuracy, MacroF1
from ftframe_metrics.generation import Bleu, Chrf, Perplexity, Rouge, RougeL
from ftframe_metrics.preference import PreferenceMetric
from ftframe_metrics.slots import SlotF1
from ftframe_metrics.structured import ExactMatch, FieldF1, JsonSchema, JsonValid
from ftframe_metrics.tool_calls import ToolCalls


@hookimpl
def ftframe_metrics():
    return [MacroF1, Accuracy, ExactMatch, FieldF1, JsonValid, JsonSchema, SlotF1, Perplexity, Rouge, RougeL, Bleu, Chrf,
            PreferenceMetric, ToolCalls]
