"""The example third-party package in docs/plugins/example: pip-installed, listed, and used by config alone."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "plugins" / "example"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example package pip-installed into a folder put on the test processes' path.

    (A --target folder rather than the shared virtualenv, so the package cannot leak into other tests.)
    """
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(EXAMPLE)], check=True, timeout=300)
    assert list(target.glob("ftframe_example-*.dist-info"))
    return target


def run(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600, cwd=cwd)


def test_listed_by_ftframe_plugins(site):
    out = run(site, "-m", "ftframe.commands", "plugins", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    example = rows["ftframe_example"]
    assert example["distribution"] == "ftframe-example" and example["version"] == "0.1.0"
    assert example["provides"] == {"data": ["tsv_labels"], "metrics": ["answer_words"],
                                   "exporters": ["predictions_csv"]}


def test_tiny_job_uses_all_three_through_config(site, tmp_path, tiny_model_dir):
    rows = [f"invoice {i} charged twice\tbilling" if i % 2 else f"app crash error {i}\ttechnical" for i in range(24)]
    data = tmp_path / "tickets.tsv"
    data.write_text("\n".join(rows + ["a line without a tab"]) + "\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    out = run(site, "-m", "ftframe", "model=hf_local", f"model.path={tiny_model_dir}", "data=tsv_labels",
              f"data.path={data}", "data.on_error=skip", "metrics=[macro_f1,answer_words]",
              "exporters=[predictions_csv]", "backend.epochs=1", "task.name=example", "threads=1",
              "trainer.enable_progress_bar=false", "eval.max_new_tokens=3", f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "answer_words" in metrics["test"]["values"]
    rejected = [json.loads(line) for line in (run_dir / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == 1 and rejected[0]["source"].endswith("tickets.tsv:25")
    table = list(csv.DictReader((run_dir / "predictions.csv").open(encoding="utf-8")))
    assert len(table) == metrics["data"]["splits"]["test"] and {"input", "gold", "predicted"} <= set(table[0])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "succeeded" and manifest["exports"]["predictions_csv"]["verified"] is True


def test_bad_option_of_the_third_party_plugin_is_named(site):
    out = run(site, "-m", "ftframe.commands", "validate", "data=tsv_labels", "data.path=x.tsv", "data.sytem=hi")
    assert out.returncode == 2 and "data.sytem" in out.stderr and "system" in out.stderr
