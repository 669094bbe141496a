"""Terminal output with rich: stage headers, progress bars, the end-of-run summary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


def get_console() -> Console:
    return Console(stderr=False, highlight=False)


def stage(console: Console, title: str) -> None:
    console.rule(f"[bold]{title}")


@contextmanager
def progress_bar(console: Console, description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar; yields ``advance(n)``."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=False) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n: prog.advance(task, n)


@contextmanager
def live_progress(console: Console, description: str) -> Iterator[Callable[..., None]]:
    """A progress bar for work whose size is learnt on the way (e.g. a provider's training job); yields
    ``update(description=..., completed=..., total=...)``. Print through ``console`` meanwhile."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as prog:
        task = prog.add_task(description, total=None)
        yield lambda **fields: prog.update(task, **fields)


def fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("—" if value is None else str(value))


def metrics_table(title: str, tuned: dict[str, float], baseline: dict[str, float] | None,
                  gate: dict[str, Any] | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    if baseline is not None:
        table.add_column("baseline", justify="right")
    table.add_column("tuned", justify="right")
    if baseline is not None:
        table.add_column("Δ", justify="right")
    table.add_column("gate", justify="right")
    checks = (gate or {}).get("checks", {})
    for name, value in tuned.items():
        row = [name]
        if baseline is not None:
            b = baseline.get(name)
            row += [fmt(b)]
        row += [fmt(value)]
        if baseline is not None:
            b = baseline.get(name)
            row += [f"{value - b:+.4f}" if isinstance(b, float) and isinstance(value, float) else "—"]
        chk = checks.get(name)
        if chk and "max" in chk:
            row += [("[green]≤ " if chk["passed"] else "[red]> ") + fmt(chk["max"])]
        else:
            row += [("[green]≥ " if chk["passed"] else "[red]< ") + fmt(chk["min"]) if chk else ""]
        table.add_row(*row)
    return table
