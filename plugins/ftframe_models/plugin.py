"""Entry point of the first-party model sources."""

from ftframe import hookimpl
from ftframe_models.hf_local import HfLocal
from ftframe_models.smollm2 import SmolLM2


@hookimpl
def ftframe_model_sources():
    return [SmolLM2, HfLocal]
