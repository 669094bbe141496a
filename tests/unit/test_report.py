"""Sweep reports from run dirs on disk: per-run rows, cells by swept overrides, mean ± std, failures."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from ftframe.commands import main as ftframe_main
from ftframe.report import collect, write_report
from ftframe.sweep import find_finished, scan

CONFIG = {"task": {"name": "tiny", "primary_metric": "macro_f1"}, "seed": 0}


def write_run(sweep: Path, sub: str, overrides: list[str], *, status: str = "succeeded", f1: float | None = None,
              error: str | None = None, config: dict | None = None) -> Path:
    d = sweep / sub
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    seed = int(next((o.split("=")[1] for o in overrides if o.startswith("seed=")), 0))
    values = {} if f1 is None else {"macro_f1": f1, "accuracy": f1 + 0.1, "label": "text is not a metric"}
    manifest = {"status": status, "seed": seed, "config": config or {**CONFIG, "seed": seed},
                "metrics": {"values": values, "train": {"tokens_per_second": 100.0 + seed, "train_seconds": 2.0}},
                "gate": {"passed": status == "succeeded", "checks": {"macro_f1": {}}} if f1 is not None else {},
                "wall_seconds": 10.0 + seed, "error": error, "started": "2026-01-01T00:00:00+00:00"}
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


@pytest.fixture
def sweep(tmp_path) -> Path:
    s = tmp_path / "sweep"
    f1 = {("a", 0): 0.5, ("a", 1): 0.7, ("a", 2): 0.6, ("b", 0): 0.9, ("b", 1): 0.8}
    n = 0
    for model in ("a", "b"):
        for seed in (0, 1, 2):
            ov = [f"model={model}", "data.path=x.jsonl", f"seed={seed}"]
            if (model, seed) == ("b", 2):
                write_run(s, str(n), ov, status="failed", error="DataError: x.jsonl line 3: bad | row")
            elif (model, seed) == ("b", 1):
                write_run(s, str(n), ov, status="gate_failed", f1=f1[model, seed])
            else:
                write_run(s, str(n), ov, f1=f1[model, seed])
            n += 1
    (s / "multirun.yaml").write_text("hydra: {}\n")
    return s


def test_cells_group_by_swept_overrides_except_seed(sweep):
    report = collect(sweep)
    assert report.group_keys == ["model"]  # data.path is the same everywhere, seed repeats a cell
    assert report.primary == "macro_f1" and report.metrics == ["macro_f1", "accuracy"]
    rows = {r["model"]: r for r in report.cell_rows()}
    assert rows["a"]["macro_f1_mean"] == pytest.approx(0.6)
    assert rows["a"]["macro_f1_std"] == pytest.approx(statistics.stdev([0.5, 0.7, 0.6]))
    # the failed run counts as a run but not in the statistics; gate_failed is a finished result
    assert (rows["b"]["runs"], rows["b"]["finished"], rows["b"]["failed"]) == (3, 2, 1)
    assert rows["b"]["macro_f1_mean"] == pytest.approx(0.85)
    assert rows["b"]["gate_passed"] == 1 and rows["b"]["seeds"] == "0 1"
    assert rows["a"]["wall_s_mean"] == pytest.approx(11.0) and rows["a"]["tokens_per_s_mean"] == pytest.approx(101.0)


def test_written_files(sweep):
    report = write_report(sweep)
    assert [r.status for r in report.failed] == ["failed"]
    with (sweep / "results.csv").open() as f:
        runs = list(csv.DictReader(f))
    assert [r["run"] for r in runs] == ["0", "1", "2", "3", "4", "5"]
    assert runs[5]["status"] == "failed" and "line 3" in runs[5]["error"] and runs[5]["macro_f1"] == ""
    assert runs[4]["gate"] == "FAIL" and runs[0]["gate"] == "pass"
    assert float(runs[1]["macro_f1"]) == 0.7 and runs[1]["seed"] == "1" and runs[1]["tokens_per_s"] == "101.0"
    assert runs[0]["overrides"] == "model=a data.path=x.jsonl seed=0"
    with (sweep / "results_cells.csv").open() as f:
        cells = list(csv.DictReader(f))
    assert [c["model"] for c in cells] == ["a", "b"]
    md = (sweep / "results.md").read_text()
    assert "| a | 3 | 0 | 3/3 | 0 1 2 | 0.6000 ± 0.1000 |" in md
    assert "`5` (failed): DataError: x.jsonl line 3: bad | row" in md and "## Not finished" in md and "hydra.sweep.dir=" in md
    page = (sweep / "results.html").read_text()
    assert "bad | row" in page and '<tr class="failed">' in page and 'src="results.png"' in page
    assert (sweep / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_plot_without_a_finished_run(tmp_path):
    s = tmp_path / "s"
    write_run(s, "0", ["seed=0"], status="failed", error="boom")
    (s / "results.png").write_bytes(b"stale")
    report = write_report(s)
    assert "png" not in report.files and not (s / "results.png").exists()
    assert "![" not in (s / "results.md").read_text()


def test_nested_run_dirs_are_not_cells(sweep):
    write_run(sweep / "0", "rerun-2026", ["model=a", "data.path=x.jsonl", "seed=0"], f1=0.1)
    assert len(scan(sweep)) == 6


def test_find_finished_matches_override_set_and_config(sweep):
    config = {**CONFIG, "seed": 1}
    found = find_finished(sweep, ["seed=1", "model=a", "data.path=x.jsonl"], config)
    assert found is not None and found.run_dir == sweep / "1"
    assert find_finished(sweep, ["model=a", "data.path=x.jsonl", "seed=1"], {**config, "threads": 1}) is None
    assert find_finished(sweep, ["model=b", "data.path=x.jsonl", "seed=2"], {**CONFIG, "seed": 2}) is None  # failed
    gate_failed = find_finished(sweep, ["model=b", "data.path=x.jsonl", "seed=1"], config)
    assert gate_failed is not None and gate_failed.status == "gate_failed"


def test_report_command(sweep, tmp_path, capsys):
    assert ftframe_main(["report", str(sweep)]) == 0
    assert (sweep / "results.md").is_file()
    assert ftframe_main(["report", str(sweep), "--strict"]) == 1
    assert ftframe_main(["report", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert ftframe_main(["report", str(tmp_path / "empty")]) == 2
    assert "no runs found" in capsys.readouterr().err
