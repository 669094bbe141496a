"""Matrix aggregation: a sweep dir's runs -> ``results.csv``/``.md``/``.html`` and a plot of the main metric.

Built from disk only (:mod:`ftframe.sweep`), so the Hydra callback :class:`SweepReport` (when a
multirun ends) and ``ftframe report SWEEP_DIR`` (any time later) give the same files.

- one row per run: status (a failed run with its error), every metric, gate, wall time, tokens/s,
  seed and overrides;
- one row per cell: runs grouped by the swept overrides except ``seed`` (the keys whose values differ
  between runs), with mean ± sample standard deviation over the cell's finished runs.
"""

from __future__ import annotations

import csv
import html
import io
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ftframe.errors import FtframeError
from ftframe.io import write_bytes, write_text
from ftframe.sweep import RunRecord, scan

SEED_KEYS = ("seed",)
"""Override keys that repeat a cell rather than define one."""


class ReportError(FtframeError):
    """A sweep dir cannot be reported (missing, or no runs in it)."""


def override_key(override: str) -> str:
    """``+model.path=x`` -> ``model.path``."""
    return override.split("=", 1)[0].lstrip("+~")


def override_value(override: str) -> str:
    return override.split("=", 1)[1] if "=" in override else ""


@dataclass
class Cell:
    """Runs that differ only in their seed."""

    key: tuple[str, ...]
    runs: list[RunRecord] = field(default_factory=list)

    @property
    def finished(self) -> list[RunRecord]:
        return [r for r in self.runs if r.finished]


@dataclass
class Report:
    sweep_dir: Path
    runs: list[RunRecord]
    group_keys: list[str]
    metrics: list[str]
    """Numeric metric names, the primary metric first."""
    primary: str | None
    cells: list[Cell]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.runs if not r.finished]

    # ------------------------------------------------------------------ per-run rows
    def run_rows(self) -> list[dict[str, Any]]:
        rows = []
        for r in self.runs:
            train = (r.manifest.get("metrics") or {}).get("train") or {}
            gate = r.manifest.get("gate") or {}
            opts = dict(_parse(r.overrides))
            rows.append({
                "run": _rel(r.run_dir, self.sweep_dir), "status": r.status,
                **{k: opts.get(k, "") for k in self.group_keys},
                "seed": r.manifest.get("seed"),
                **{m: r.values.get(m) for m in self.metrics},
                "gate": ("pass" if gate.get("passed") else "FAIL") if gate.get("checks") else "",
                "wall_s": r.manifest.get("wall_seconds"), "train_s": train.get("train_seconds"),
                "tokens_per_s": train.get("tokens_per_second"),
                "started": r.manifest.get("started"), "finished": r.manifest.get("finished"),
                "overrides": " ".join(r.overrides), "error": _one_line(r.manifest.get("error")),
            })
        return rows

    # ------------------------------------------------------------------ per-cell rows
    def cell_rows(self) -> list[dict[str, Any]]:
        rows = []
        for cell in self.cells:
            done = cell.finished
            row: dict[str, Any] = dict(zip(self.group_keys, cell.key, strict=True))
            row.update(runs=len(cell.runs), finished=len(done), failed=len(cell.runs) - len(done),
                       gate_passed=sum(1 for r in done if (r.manifest.get("gate") or {}).get("passed", True)),
                       seeds=" ".join(str(r.manifest.get("seed")) for r in done))
            for m in self.metrics:
                row[f"{m}_mean"], row[f"{m}_std"] = mean_std([r.values.get(m) for r in done])
            for name, values in (("wall_s", [r.manifest.get("wall_seconds") for r in done]),
                                 ("tokens_per_s", [_train(r).get("tokens_per_second") for r in done])):
                row[f"{name}_mean"], _ = mean_std(values)
            rows.append(row)
        return rows


def _parse(overrides: list[str]) -> list[tuple[str, str]]:
    return [(override_key(o), override_value(o)) for o in overrides]


def _train(r: RunRecord) -> dict[str, Any]:
    return (r.manifest.get("metrics") or {}).get("train") or {}


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())[:300] if text else ""


def mean_std(values: list[Any]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the numbers in ``values`` (std None below two)."""
    nums = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not nums:
        return None, None
    return statistics.fmean(nums), (statistics.stdev(nums) if len(nums) > 1 else None)


def collect(sweep_dir: str | Path) -> Report:
    """Read every run below ``sweep_dir`` and group them into cells (nothing is written)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ReportError(f"{sweep_dir}: no such folder. Pass a multirun's sweep dir "
                          f"(hydra.sweep.dir, e.g. multirun/<task>/<time>).")
    runs = scan(sweep_dir)
    if not runs:
        raise ReportError(f"{sweep_dir}: no runs found (no manifest.json below it). Is it a sweep dir, and has "
                          f"any of its jobs started?")
    values_by_key: dict[str, set[str]] = {}
    order: list[str] = []
    for r in runs:
        for k, v in _parse(r.overrides):
            if k not in values_by_key:
                order.append(k)
            values_by_key.setdefault(k, set()).add(v)
    # A key some runs lack (e.g. added on a re-run) also varies between runs.
    swept = [k for k in order if len(values_by_key[k]) > 1 or any(k not in dict(_parse(r.overrides)) for r in runs)]
    group_keys = [k for k in swept if k not in SEED_KEYS]

    primary = next((r.primary_metric for r in runs if r.primary_metric), None)
    names: list[str] = []
    for r in runs:
        for k, v in r.values.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and k not in names:
                names.append(k)
    metrics = ([primary] if primary in names else []) + [n for n in names if n != primary]

    cells: dict[tuple[str, ...], Cell] = {}
    for r in runs:
        opts = dict(_parse(r.overrides))
        key = tuple(opts.get(k, "") for k in group_keys)
        cells.setdefault(key, Cell(key)).runs.append(r)
    return Report(sweep_dir, runs, group_keys, metrics, primary, list(cells.values()))


# ---------------------------------------------------------------------------------------------- rendering
def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"


def cell_label(report: Report, cell: Cell) -> str:
    return " ".join(f"{k}={v}" for k, v in zip(report.group_keys, cell.key, strict=True)) or "all runs"


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return buf.getvalue()


def _summary_tables(report: Report) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    """(cell header, cell rows, run header, run rows) as display strings, shared by Markdown and HTML."""
    cell_head = [*report.group_keys, "runs", "failed", "gate passed", "seeds",
                 *(f"{m} (mean ± std)" for m in report.metrics), "wall s", "tokens/s"]
    cell_rows = []
    for cell, row in zip(report.cells, report.cell_rows(), strict=True):
        cell_rows.append([*cell.key, str(row["runs"]), str(row["failed"]),
                          f"{row['gate_passed']}/{row['finished']}", row["seeds"],
                          *(_pm(row[f"{m}_mean"], row[f"{m}_std"]) for m in report.metrics),
                          _fmt(row["wall_s_mean"], 1), _fmt(row["tokens_per_s_mean"], 1)])
    run_head = ["run", "status", *report.group_keys, "seed", *report.metrics, "gate", "wall s", "tokens/s",
                "overrides"]
    run_rows = [[r["run"], r["status"], *(str(r[k]) for k in report.group_keys), _fmt(r["seed"]),
                 *(_fmt(r[m]) for m in report.metrics), r["gate"], _fmt(r["wall_s"], 1),
                 _fmt(r["tokens_per_s"], 1), r["overrides"]] for r in report.run_rows()]
    return cell_head, cell_rows, run_head, run_rows


def _title(report: Report) -> str:
    task = (report.runs[0].config.get("task") or {}).get("name", "sweep")
    return f"{task}: {len(report.runs)} runs, {len(report.cells)} cells, {len(report.failed)} not finished"


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    return ["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(esc(c) for c in row) + " |" for row in rows)]


def render_markdown(report: Report, plot: str | None) -> str:
    cell_head, cell_rows, run_head, run_rows = _summary_tables(report)
    lines = [f"# {_title(report)}", "", (f"Sweep dir: `{report.sweep_dir}`. Primary metric: "
             f"`{report.primary}`. Cells group runs by {', '.join(f'`{k}`' for k in report.group_keys) or 'nothing'}"
             f" (every swept override except the seed); mean ± sample std over each cell's finished runs."), "",
             "## Cells", "", *_md_table(cell_head, cell_rows), ""]
    if plot:
        lines += [f"![{report.primary} per cell]({plot})", ""]
    lines += ["## Runs", "", *_md_table(run_head, run_rows), ""]
    if report.failed:
        lines += ["## Not finished", ""]
        lines += [f"- `{_rel(r.run_dir, report.sweep_dir)}` ({r.status}): "
                  f"{_one_line(r.manifest.get('error')) or 'no error recorded (killed?)'}" for r in report.failed]
        lines += ["", "Re-run the same command with `hydra.sweep.dir=" + str(report.sweep_dir)
                  + "` to run these again; finished cells are skipped.", ""]
    return "\n".join(lines)


def render_html(report: Report, plot: str | None) -> str:
    cell_head, cell_rows, run_head, run_rows = _summary_tables(report)

    def table(head: list[str], rows: list[list[str]], statuses: list[str] | None = None) -> str:
        out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
        for i, row in enumerate(rows):
            cls = f' class="{statuses[i]}"' if statuses else ""
            out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
        return "\n".join(out + ["</table>"])

    errors = "".join(f"<li><code>{html.escape(_rel(r.run_dir, report.sweep_dir))}</code> ({html.escape(r.status)}): "
                     f"{html.escape(_one_line(r.manifest.get('error')) or 'no error recorded (killed?)')}</li>"
                     for r in report.failed)
    return "\n".join([
        "<!doctype html>", "<html><head><meta charset=\"utf-8\">", f"<title>{html.escape(_title(report))}</title>",
        ("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f3f3}"
        "tr.failed,tr.interrupted,tr.running{background:#fde2e2}tr.gate_failed{background:#fff4d6}</style>"),
        "</head><body>", f"<h1>{html.escape(_title(report))}</h1>",
        (f"<p>Sweep dir <code>{html.escape(str(report.sweep_dir))}</code>; primary metric "
        f"<code>{html.escape(str(report.primary))}</code>; mean ± sample std over each cell's finished runs.</p>"),
        "<h2>Cells</h2>", table(cell_head, cell_rows),
        f'<img src="{html.escape(plot)}" alt="{html.escape(str(report.primary))} per cell">' if plot else "",
        "<h2>Runs</h2>", table(run_head, run_rows, [r.status for r in report.runs]),
        f"<h2>Not finished</h2><ul>{errors}</ul>" if errors else "", "</body></html>", ""])


def render_plot(report: Report) -> bytes | None:
    """PNG bytes: the primary metric per cell (mean and std bar, each finished run a dot); None without data."""
    from matplotlib.figure import Figure  # the OO API: no pyplot global state, no display backend

    metric = report.primary
    if metric is None:
        return None
    cells = [(cell_label(report, c), [r.values.get(metric) for r in c.finished]) for c in report.cells]
    cells = [(label, [float(v) for v in vals if isinstance(v, int | float)]) for label, vals in cells]
    if not any(vals for _, vals in cells):
        return None
    fig = Figure(figsize=(max(4.0, 1.2 * len(cells) + 2), 4.0), layout="constrained")
    ax = fig.subplots()
    xs = range(len(cells))
    means = [statistics.fmean(v) if v else 0.0 for _, v in cells]
    stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for _, v in cells]
    ax.bar(xs, means, yerr=stds, capsize=4, color="#8fb3d9", edgecolor="#2f5d8a")
    for x, (_, vals) in zip(xs, cells, strict=True):
        ax.scatter([x] * len(vals), vals, color="#1b2f45", s=14, zorder=3)
    ax.set_xticks(list(xs), [label for label, _ in cells], rotation=20 if len(cells) > 3 else 0, ha="right"
                  if len(cells) > 3 else "center", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean ± std over seeds per cell (dots: runs)", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def write_report(sweep_dir: str | Path) -> Report:
    """Aggregate ``sweep_dir`` and write ``results.{csv,md,html}``, ``results_cells.csv`` and ``results.png``."""
    report = collect(sweep_dir)
    d = report.sweep_dir
    png = render_plot(report)
    plot = None
    if png is not None:
        report.files["png"] = write_bytes(d / "results.png", png)
        plot = "results.png"
    else:
        (d / "results.png").unlink(missing_ok=True)  # a stale plot would contradict the tables
    report.files["csv"] = write_text(d / "results.csv", _csv(report.run_rows()))
    report.files["cells_csv"] = write_text(d / "results_cells.csv", _csv(report.cell_rows()))
    report.files["md"] = write_text(d / "results.md", render_markdown(report, plot))
    report.files["html"] = write_text(d / "results.html", render_html(report, plot))
    return report


def print_report(report: Report, console: Any = None) -> None:
    """The cell table on the console, and where the files are."""
    from rich.table import Table

    from ftframe.console import get_console

    con = console or get_console()
    table = Table(title=_title(report), title_justify="left")
    metric = report.primary if report.primary in report.metrics else None
    for h in [*report.group_keys, "runs", "failed", "gate", *([f"{metric} (mean ± std)"] if metric else []),
              "wall s", "tokens/s"]:
        table.add_column(h)
    for cell, row in zip(report.cells, report.cell_rows(), strict=True):
        table.add_row(*cell.key, str(row["runs"]), str(row["failed"]), f"{row['gate_passed']}/{row['finished']}",
                      *([_pm(row[f"{metric}_mean"], row[f"{metric}_std"])] if metric else []),
                      _fmt(row["wall_s_mean"], 1), _fmt(row["tokens_per_s_mean"], 1))
    con.print(table)
    for r in report.failed:
        con.print(f"[red]{r.status}[/] {_rel(r.run_dir, report.sweep_dir)}: "
                  f"{_one_line(r.manifest.get('error')) or 'no error recorded'}")
    con.print(f"report: {report.files.get('md')} (also .csv, .html" + (", .png)" if "png" in report.files else ")"))


class SweepReport(Callback):
    """Hydra callback: build the sweep's report when a multirun ends (``hydra.callbacks`` in conf/config.yaml).

    A cell that failed leaves the process exit status 1 (``fail_on_error``), after the report is written.
    """

    def __init__(self, fail_on_error: bool = True) -> None:
        self.fail_on_error = fail_on_error

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            report = write_report(sweep_dir)
        except ReportError as exc:
            print(f"error: {exc}")
            return
        print_report(report)
        if self.fail_on_error and report.failed:
            raise SystemExit(1)
