"""The preflight report for people: a rich terminal summary and a PNG histogram of token lengths."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

SHOW = 5
"""Locations shown per finding in the terminal (preflight.json lists all)."""


def _dist_row(table: Table, name: str, d: dict[str, float]) -> None:
    table.add_row(name, *(f"{d[k]:g}" for k in ("min", "median", "p95", "max", "mean")))


def _labelled(counts: dict[str, int]) -> str:
    """`` (KTO labels: 150 desirable, 150 undesirable)`` for labelled replies, else nothing."""
    if not any(counts.values()):
        return ""
    return f" (KTO labels: {counts.get('desirable', 0)} desirable, {counts.get('undesirable', 0)} undesirable)"


def print_report(con: Console, report: dict[str, Any]) -> None:
    con.print(f"[bold]preflight[/] {report.get('path', '')} ({report.get('format', '?')}): {report['examples']} "
              f"examples" + (f" ({report['preference_pairs']} preference pairs)" if report["preference_pairs"] else "")
              + _labelled(report.get("labelled_replies") or {})
              + f", {report['rejected']} rejected; splits: "
              + ", ".join(f"{k} {v}" for k, v in report["splits"].items()))
    if report["format_errors"]:
        t = Table(title="format errors (OpenAI cookbook checks)", title_justify="left")
        for col in ("error type", "count", "where (first)"):
            t.add_column(col)
        for kind, e in report["format_errors"].items():
            where = "\n".join(f"{w['source']}: {w['reason']}" for w in e["where"][:SHOW])
            more = f"\n… {len(e['where']) - SHOW} more in preflight.json" if len(e["where"]) > SHOW else ""
            t.add_row(kind, str(e["count"]), where + more)
        con.print(t)
    else:
        con.print("[green]✓[/] format: no errors")
    tok = report["tokens"]
    t = Table(title=f"tokens per example ({report.get('tokenizer', 'tokenizer')}, chat template applied)",
              title_justify="left")
    for col in ("", "min", "median", "p95", "max", "mean"):
        t.add_column(col, justify="right")
    _dist_row(t, "total", tok["total"])
    _dist_row(t, "trained", tok["trained"])
    con.print(t)
    if tok.get("max_length"):
        n = tok.get("over_max_length", 0)
        colour = "yellow" if n else "green"
        con.print(f"[{colour}]{n} example(s) over max_length={tok['max_length']}[/]" + (f": {tok['action']}" if n else ""))
    cb = report.get("class_balance")
    if cb:
        train = cb["per_split"].get("train", {})
        top = ", ".join(f"{k} {v}" for k, v in list(train.items())[:8]) + (" …" if len(train) > 8 else "")
        con.print(f"labels: {cb['labels']} (train: {top}); imbalance ratio {cb['imbalance_ratio']}")
    dup, leak = report["duplicates"], report["leakage"]
    con.print(("[yellow]" if dup["groups"] else "[green]") + f"exact duplicates: {dup['extra_copies']} extra "
              f"copies in {dup['groups']} group(s)[/]")
    colour = "green" if not (leak["exact"] or leak["near"]) else ("red" if leak["level"] == "error" else "yellow")
    con.print(f"[{colour}]train/test leakage: {leak['exact']} exact, {leak['near']} near-duplicate (normalised text)[/]")
    for w in (leak["where"]["exact"] + leak["where"]["near"])[:SHOW]:
        con.print(f"  {w['held_out']} = {w['train']}")
    est = report.get("estimate")
    if est:
        line = f"estimate: {est['train_tokens_per_epoch']} training tokens per epoch"
        if "train_tokens_before_too_long" in est:
            line += f" ({est['train_tokens_before_too_long']} before transforms.too_long={est['too_long']})"
        if est.get("epochs"):
            line += f" x {est['epochs']} epoch(s)"
        local = est.get("local")
        if local and "seconds" in local:
            line += f"; local ≈ {_duration(local['seconds'])} at {local['tokens_per_second']:g} tokens/s ({local['source']})"
        elif local is None:
            line += "; local time unknown (no recorded or measured throughput)"
        con.print(line)
        if est.get("provider"):
            con.print("provider cost: " + ", ".join(f"{k} {v}" for k, v in est["provider"].items()))
    for p in report["problems"]:
        colour = "red" if p["level"] == "error" else "yellow"
        con.print(f"[{colour}]{p['level']}:[/] {p['message']}")
    if not report["problems"]:
        con.print("[green]✓ no problems found[/]")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def write_histogram(path: str | os.PathLike, report: dict[str, Any]) -> Path:
    """A PNG histogram of total and trained tokens per example, with ``max_length`` marked (atomic write)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    tok = report["tokens"]
    totals, trained = tok["lengths"]["total"], tok["lengths"]["trained"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    top = max([*totals, 1])
    bins = min(60, max(10, len(set(totals))))
    ax.hist(totals, bins=bins, range=(0, top), alpha=0.7, label="total tokens (prompt + reply)")
    ax.hist(trained, bins=bins, range=(0, top), alpha=0.7, label="trained tokens (reply)")
    if tok.get("max_length") and tok["max_length"] <= 1.5 * top:
        ax.axvline(tok["max_length"], color="red", linestyle="--",
                   label=f"max_length {tok['max_length']} ({tok.get('over_max_length', 0)} over)")
    ax.set_xlabel("tokens per example")
    ax.set_ylabel("examples")
    fits = (f"; max_length {tok['max_length']}: all fit" if tok.get("max_length") and tok["max_length"] > 1.5 * top
            else "")
    ax.set_title(f"Token lengths: {Path(str(report.get('path', ''))).name} ({len(totals)} examples{fits})")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path
