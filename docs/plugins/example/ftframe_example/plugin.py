"""The plugin: three classes and the hooks that register them."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING

from ftframe import hookimpl
from ftframe.api import (DataFormat, Example, ExportContext, Exporter, ExportResult, LoadedData, Metric,
                         MetricResult, Prediction, Rejected, TaskInfo)
from ftframe.config import one_of
from ftframe.errors import DataError
from ftframe.io import write_text


# ----------------------------------------------------------------------------------- data format
@dataclass
class TsvLabelsConfig:
    path: str = MISSING
    """A UTF-8 file of `text<TAB>label` lines."""
    system: str = "Classify the text. Answer with the label only."
    """System prompt put before every text."""
    on_error: str = "raise"
    """`raise` or `skip` (bad lines are kept in rejected.jsonl with their reason)."""

    def __post_init__(self) -> None:
        one_of("data.on_error", self.on_error, ("raise", "skip"))


class TsvLabels(DataFormat):
    """Tab-separated `text<TAB>label` lines; the label becomes the assistant's reply."""

    name = "tsv_labels"
    Config = TsvLabelsConfig

    def load(self) -> LoadedData:
        path = Path(self.config.path)
        if not path.is_file():
            raise DataError(f"{path}: file not found (data.path).")
        examples, rejected = [], []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                why = f"expected `text<TAB>label`, got {len(parts)} field(s)"
                if self.config.on_error != "skip":
                    raise DataError(f"{path}:{lineno}: {why}.")
                rejected.append(Rejected(f"{path}:{lineno}", why, line))
                continue
            text, label = parts[0].strip(), parts[1].strip()
            examples.append(Example([{"role": "system", "content": self.config.system},
                                     {"role": "user", "content": text},
                                     {"role": "assistant", "content": label}], source=f"{path}:{lineno}"))
        return LoadedData(examples, rejected, files=[path])


# ------------------------------------------------------------------------------------------ metric
class AnswerWords(Metric):
    """Mean number of words per answer (short answers are what a label task wants)."""

    name = "answer_words"
    higher_is_better = False

    def compute(self, predictions: Sequence[Prediction], task: TaskInfo) -> MetricResult:
        words = [len(p.predicted.split()) for p in predictions]
        return MetricResult({"answer_words": sum(words) / max(len(words), 1)}, {"max": max(words, default=0)})


# ---------------------------------------------------------------------------------------- exporter
@dataclass
class PredictionsCsvConfig:
    filename: str = "predictions.csv"
    """File name below the run dir."""


class PredictionsCsv(Exporter):
    """The test predictions as CSV: input, gold, predicted, correct."""

    name = "predictions_csv"
    Config = PredictionsCsvConfig

    def export(self, ctx: ExportContext) -> ExportResult:
        buf = io.StringIO()
        out = csv.writer(buf)
        out.writerow(["input", "gold", "predicted", "correct"])
        for p in ctx.predictions:
            text = next((m.get("content") or "" for m in reversed(p.prompt) if m.get("role") == "user"), "")
            out.writerow([text, p.gold, p.predicted, p.predicted.strip() == (p.gold or "").strip()])
        path = write_text(ctx.run_dir / self.config.filename, buf.getvalue())
        return ExportResult([str(path)], verified=True, details={"rows": len(ctx.predictions)})


# ------------------------------------------------------------------------------------------- hooks
@hookimpl
def ftframe_data_formats():
    return [TsvLabels]


@hookimpl
def ftframe_metrics():
    return [AnswerWords]


@hookimpl
def ftframe_exporters():
    return [PredictionsCsv]
