"""Entry point of the first-party judges."""

from ftframe import hookimpl
from ftframe_judges.human_labels import HumanLabels
from ftframe_judges.local import LlmJudge, LoglikJudge


@hookimpl
def ftframe_judges():
    return [HumanLabels, LlmJudge, LoglikJudge]
