"""Entry point of the first-party local backends."""

from ftframe import hookimpl
from ftframe_backends.lora import LoraBackend


@hookimpl
def ftframe_backends():
    return [LoraBackend]
