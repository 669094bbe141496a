"""A comparison's output: rich tables in the terminal, and ``comparison.{json,md,html,png}`` plus
``flips.jsonl`` in its output folder (the plot: B − A with its interval for every quantity)."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import Any

from ftframe.io import write_bytes, write_json, write_jsonl, write_text
from ftframe.lifecycle.bootstrap import Delta
from ftframe.lifecycle.compare import Comparison

SHOWN_FLIPS = 10


def _f(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.4f}" if sign else f"{value:.4f}"


def _p(value: float | None) -> str:
    return "—" if value is None else "<0.001" if value < 0.001 else f"{value:.3f}"


def delta_rows(deltas: list[Delta]) -> list[list[str]]:
    return [[d.name, _f(d.a), _f(d.b), _f(d.delta, True), _ci(d), _p(d.p_value), d.verdict] for d in deltas]


def _ci(d: Delta) -> str:
    return "—" if d.low is None or d.high is None else f"{d.low:+.3f} … {d.high:+.3f}"


DELTA_HEAD = ["quantity", "A", "B", "B − A", "CI", "p", "verdict"]


def costly_rows(comp: Comparison) -> list[list[str]]:
    rows = []
    for name, info in comp.costly.items():
        for key, value in info["values"].items():
            rows.append([name, key, _f(value) if isinstance(value, float) else str(value)])
        details = info.get("details") or {}
        if {"wins", "ties", "losses"} <= set(details):
            rows.append([name, "B wins / ties / losses", f"{details['wins']} / {details['ties']} / {details['losses']}"])
    return rows


def flip_rows(comp: Comparison) -> list[list[str]]:
    return [[f["change"], f["source"], _short(f["prompt"], 40), str(f["gold"]), _short(f["a"], 30), _short(f["b"], 30)]
            for f in comp.flips[:SHOWN_FLIPS]]


FLIP_HEAD = ["change", "example", "prompt", "gold", "A", "B"]


def _short(text: Any, n: int = 60) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def verdict_line(comp: Comparison) -> str:
    if comp.accepted:
        return "B may replace A: every check passed."
    return "B must not replace A: " + "; ".join(comp.reasons) + "."


def _split(comp: Comparison) -> tuple[list[Delta], list[Delta]]:
    return [d for d in comp.deltas if not d.name.startswith("per_")], [d for d in comp.deltas if d.name.startswith("per_")]


def flip_counts(comp: Comparison) -> str:
    improved = sum(f["change"] == "improved" for f in comp.flips)
    return (f"answers differ on {round((1 - comp.agreement) * len(comp.a.predictions or []))} of "
            f"{len(comp.a.predictions or [])} examples; {comp.primary} flipped on {len(comp.flips)}: "
            f"{improved} improved, {len(comp.flips) - improved} regressed")


# ------------------------------------------------------------------------------------------ terminal
def print_comparison(comp: Comparison, console: Any) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    def table(title: str, head: list[str], rows: list[list[str]], wrap: tuple[str, ...] = ()) -> Table:
        t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for i, h in enumerate(head):
            left = i == 0 or h in ("verdict", "prompt", "A", "B", "change", "gold", "value")
            t.add_column(h, justify="left" if left else "right", no_wrap=h not in wrap, overflow="fold")
        for row in rows:
            t.add_row(*map(escape, row))
        return t

    def terse(rows: list[list[str]]) -> list[list[str]]:  # 3 decimals and a short verdict fit 80 columns
        def three(cell: str) -> str:
            return re.sub(r"([+-]?\d+\.\d{3})\d+", r"\1", cell)

        return [[r[0], *map(three, r[1:6]), r[6].replace("no difference", "no diff.")] for r in rows]

    conf = f"{comp.settings['confidence']:.0%}"
    console.print(escape(f"A: {comp.a.name} ({comp.a.source})\nB: {comp.b.name} ({comp.b.source})\n"
                         f"on {comp.paired_on}"))
    overall, per = _split(comp)
    if overall:
        console.print(table(f"{comp.task.name}: B against A, paired bootstrap ({comp.settings['resamples']} "
                            f"resamples, {conf} CI)", DELTA_HEAD, terse(delta_rows(overall))))
    groups: dict[str, list[Delta]] = {}
    for d in per:  # per_class[billing].f1 -> table "per_class F1", row "billing"
        groups.setdefault(d.name.split("[", 1)[0], []).append(d)
    for group, rows in groups.items():
        shown = [[d.name.split("[", 1)[1].rsplit("]", 1)[0], *r[1:]] for d, r in zip(rows, delta_rows(rows))]
        console.print(table(f"{group} F1", ["name", *DELTA_HEAD[1:]], terse(shown)))
    if comp.costly:
        console.print(table("scored once, B against A", ["metric", "value", ""], costly_rows(comp), wrap=("value",)))
    console.print(flip_counts(comp))
    if comp.flips:
        console.print(table(f"flipped examples (first {min(SHOWN_FLIPS, len(comp.flips))}; all in flips.jsonl)",
                            FLIP_HEAD[:1] + FLIP_HEAD[2:], [r[:1] + r[2:] for r in flip_rows(comp)],
                            wrap=("prompt", "A", "B")))
    for note in comp.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    for c in comp.checks:
        console.print(f"{'[green]pass[/]' if c.passed else '[red]FAIL[/]'} {escape(c.name)}: {escape(c.detail)}")
    colour = "green" if comp.accepted else "red"
    console.print(f"[bold {colour}]{escape(verdict_line(comp))}[/]")
    if comp.files:
        console.print(f"report: {comp.files.get('md')}")


# ------------------------------------------------------------------------------------------- files
def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    return ["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(esc(c) for c in row) + " |" for row in rows), ""]


def render_markdown(comp: Comparison, plot: str | None) -> str:
    overall, per = _split(comp)
    conf = f"{comp.settings['confidence']:.0%}"
    lines = [f"# {comp.task.name}: {comp.b.name} (B) against {comp.a.name} (A)", "",
             f"- A: `{comp.a.spec}` ({comp.a.source})", f"- B: `{comp.b.spec}` ({comp.b.source})",
             f"- examples: {comp.paired_on}",
             (f"- intervals: {conf} paired percentile bootstrap over examples, {comp.settings['resamples']} "
              f"resamples, seed {comp.settings['seed']}"), "", f"**{verdict_line(comp)}**", ""]
    if overall:
        lines += ["## Metrics", "", *_md_table(DELTA_HEAD, delta_rows(overall))]
    if plot:
        lines += [f"![B − A with {conf} intervals]({plot})", ""]
    if per:
        lines += ["## Per class / per field", "", *_md_table(DELTA_HEAD, delta_rows(per))]
    if comp.costly:
        lines += ["## Scored once (B against A)", "", *_md_table(["metric", "value", ""], costly_rows(comp))]
    lines += ["## Flipped examples", "", flip_counts(comp) + " (all in `flips.jsonl`).", ""]
    if comp.flips:
        lines += _md_table(FLIP_HEAD, flip_rows(comp))
    lines += ["## Checks", "", *(f"- {'pass' if c.passed else '**FAIL**'} {c.name}: {c.detail}" for c in comp.checks), ""]
    lines += [f"- note: {n}" for n in comp.notes]
    return "\n".join(lines) + "\n"


def render_html(comp: Comparison, plot: str | None) -> str:
    def table(head: list[str], rows: list[list[str]]) -> str:
        out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
        out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
        return "\n".join(out + ["</table>"])

    overall, per = _split(comp)
    title = f"{comp.task.name}: {comp.b.name} (B) against {comp.a.name} (A)"
    colour = "#1a7f37" if comp.accepted else "#c62828"
    parts = ["<!doctype html>", '<html><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
             ("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
              "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f3f3}</style>"),
             "</head><body>", f"<h1>{html.escape(title)}</h1>",
             (f"<p>Examples: {html.escape(comp.paired_on)}. A: <code>{html.escape(comp.a.spec)}</code>; B: "
              f"<code>{html.escape(comp.b.spec)}</code>.</p>"),
             f'<p style="color:{colour}"><b>{html.escape(verdict_line(comp))}</b></p>']
    if overall:
        parts += ["<h2>Metrics</h2>", table(DELTA_HEAD, delta_rows(overall))]
    if plot:
        parts.append(f'<img src="{html.escape(plot)}" alt="B minus A with intervals">')
    if per:
        parts += ["<h2>Per class / per field</h2>", table(DELTA_HEAD, delta_rows(per))]
    if comp.costly:
        parts += ["<h2>Scored once (B against A)</h2>", table(["metric", "value", ""], costly_rows(comp))]
    parts += ["<h2>Flipped examples</h2>", f"<p>{html.escape(flip_counts(comp))}</p>"]
    if comp.flips:
        parts.append(table(FLIP_HEAD, flip_rows(comp)))
    parts += ["<h2>Checks</h2><ul>", *(f"<li>{'pass' if c.passed else '<b>FAIL</b>'} {html.escape(c.name)}: "
                                        f"{html.escape(c.detail)}</li>" for c in comp.checks), "</ul>",
              "</body></html>", ""]
    return "\n".join(parts)


def render_plot(comp: Comparison) -> bytes | None:
    """PNG: B − A and its interval for each quantity (headline values first), zero marked."""
    from matplotlib.figure import Figure  # the OO API: no pyplot global state, no display backend

    overall, per = _split(comp)
    rows = [d for d in overall + per if d.delta is not None and d.low is not None]
    if not rows:
        return None
    rows = rows[::-1]  # top to bottom in table order
    fig = Figure(figsize=(7.0, 1.2 + 0.32 * len(rows)), layout="constrained")
    ax = fig.subplots()
    ys = range(len(rows))
    colours = ["#2e7d32" if d.verdict == "B better" else "#c62828" if d.verdict == "B worse" else "#546e7a"
               for d in rows]
    for y, d, c in zip(ys, rows, colours):
        ax.errorbar([d.delta], [y], xerr=[[d.delta - d.low], [d.high - d.delta]], fmt="o", color=c, capsize=3)  # type: ignore[operator]
    ax.axvline(0.0, color="#999", linewidth=1)
    ax.set_yticks(list(ys), [d.name for d in rows], fontsize=8)
    ax.set_xlabel("B − A")
    ax.set_title(f"{comp.task.name}: B − A, {comp.settings['confidence']:.0%} paired bootstrap intervals "
                 f"({len(comp.a.predictions or [])} examples)", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def write_comparison(comp: Comparison, out: Path) -> dict[str, str]:
    """Write the report files into ``out``; returns their paths by kind."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    png = render_plot(comp)
    plot = None
    if png is not None:
        files["png"] = str(write_bytes(out / "comparison.png", png))
        plot = "comparison.png"
    files["flips"] = str(write_jsonl(out / "flips.jsonl", comp.flips))
    files["md"] = str(write_text(out / "comparison.md", render_markdown(comp, plot)))
    files["html"] = str(write_text(out / "comparison.html", render_html(comp, plot)))
    comp.files = {**files, "json": str(out / "comparison.json")}
    write_json(out / "comparison.json", comp.to_json())
    return comp.files
