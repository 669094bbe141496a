"""Entry point of the first-party exporters."""

from ftframe import hookimpl
from ftframe_exporters.adapter import AdapterExporter
from ftframe_exporters.gguf_export import GgufExporter
from ftframe_exporters.merged import MergedExporter
from ftframe_exporters.model_card import ModelCardExporter


@hookimpl
def ftframe_exporters():
    return [AdapterExporter, MergedExporter, GgufExporter, ModelCardExporter]
