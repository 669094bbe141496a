"""Entry point of the first-party provider backends."""

from ftframe import hookimpl
from ftframe_providers.openai_backend import OpenAIBackend
from ftframe_providers.together_backend import TogetherBackend


@hookimpl
def ftframe_backends():
    return [OpenAIBackend, TogetherBackend]
