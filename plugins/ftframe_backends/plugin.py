"""Entry point of the first-party local backends."""

from ftframe import hookimpl
from ftframe_backends.full import FullBackend
from ftframe_backends.lora import LoraBackend
from ftframe_backends.preference import DpoBackend, IpoBackend, KtoBackend, OrpoBackend, SimpoBackend
from ftframe_backends.qlora import QloraBackend


@hookimpl
def ftframe_backends():
    return [LoraBackend, QloraBackend, FullBackend, DpoBackend, IpoBackend, SimpoBackend, OrpoBackend, KtoBackend]
