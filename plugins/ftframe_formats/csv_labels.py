"""CSV/TSV with a text column and a label column: the text becomes the user turn, the label the reply."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ftframe.api import DataFormat, Example, LoadedData, Rejected
from ftframe.config.errors import did_you_mean
from ftframe.errors import DataError
from ftframe_formats.file_config import FileConfig, read_text, reject


@dataclass
class CsvLabelsConfig(FileConfig):
    """``path``: a .csv or .tsv file whose first row names the columns."""

    text_column: str = "text"
    """Column holding the input text (the user turn)."""
    label_column: str = "label"
    """Column holding the label (the assistant's reply)."""
    delimiter: str | None = None
    """Field separator; default: a tab for .tsv files, a comma otherwise."""
    system: str | None = None
    """System prompt put before every text (none when null)."""


class CsvLabels(DataFormat):
    """CSV/TSV rows of text and label (e.g. BANKING77); the label becomes the assistant reply."""

    name = "csv_labels"
    path_kind = "file"
    Config = CsvLabelsConfig

    def load(self) -> LoadedData:
        c = self.config
        path = Path(c.path)
        header, rows = read_csv_rows(path, c.encoding, c.delimiter)
        columns = {name: i for i, name in enumerate(header)}
        for key, wanted in (("text_column", c.text_column), ("label_column", c.label_column)):
            if wanted not in columns:
                raise DataError(f"{path}: no column {wanted!r}{did_you_mean(wanted, columns)} (data.{key}); the "
                                f"header has: {', '.join(columns)}. Name the column with data=csv_labels "
                                f"data.{key}=COLUMN, or map any columns to a prompt and a reply with data=fields "
                                f"data.prompt=COLUMN data.response=COLUMN.")
        ti, li = columns[c.text_column], columns[c.label_column]
        examples: list[Example] = []
        rejected: list[Rejected] = []
        for lineno, row in rows:
            where = f"{path}:{lineno}"
            if len(row) != len(header):
                why = f"{len(row)} fields where the header has {len(header)}"
            elif not row[ti].strip():
                why = f"empty {c.text_column!r}"
            elif not row[li].strip():
                why = f"empty {c.label_column!r}"
            else:
                msgs = ([{"role": "system", "content": c.system}] if c.system else []) + [
                    {"role": "user", "content": row[ti].strip()}, {"role": "assistant", "content": row[li].strip()}]
                examples.append(Example(messages=msgs, source=where))
                continue
            reject(c, where, why, row, rejected)
        return LoadedData(examples, rejected, files=[path])


def read_csv_rows(path: Path, encoding: str, delimiter: str | None) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """``(column names, [(line number, cells)])`` of a CSV/TSV file whose first row names the columns (names
    stripped; a tab separates the fields of a ``.tsv``, a comma otherwise, unless ``delimiter`` is given).
    Blank rows are skipped; a row's line number is the line it starts on (a quoted cell may span lines)."""
    delimiter = delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    reader = csv.reader(read_text(path, encoding).splitlines(), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise DataError(f"{path}: empty file (expected a header row naming the columns).")
    rows: list[tuple[int, list[str]]] = []
    start = reader.line_num + 1
    for row in reader:
        if row and any(cell.strip() for cell in row):
            rows.append((start, row))
        start = reader.line_num + 1
    return [name.strip() for name in header], rows
