"""Plots metrics write into the run dir (matplotlib, without pyplot's global state)."""

from __future__ import annotations

import io
from pathlib import Path

from ftframe.io import write_bytes


def confusion_matrix_png(path: Path, rows: list[str], columns: list[str], counts: list[list[int]], *,
                         title: str) -> Path:
    """A heat map of ``counts`` (rows: gold, columns: predicted) with every count written in its cell."""
    from matplotlib.figure import Figure

    size = max(4.0, 0.55 * len(columns) + 2.5)
    fig = Figure(figsize=(size, max(3.5, 0.5 * len(rows) + 2.0)))
    ax = fig.add_subplot()
    im = ax.imshow(counts, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(columns)), labels=columns, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), labels=rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    top = max((c for row in counts for c in row), default=0)
    for i, row in enumerate(counts):
        for j, c in enumerate(row):
            ax.text(j, i, str(c), ha="center", va="center", fontsize=8,
                    color="white" if top and c > top / 2 else "black")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return write_bytes(path, buf.getvalue())
