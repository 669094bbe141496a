"""Reproducibility on the tiny model: what the manifest records, bit-identical repeats on the CPU, and
``ftframe rerun`` (exact match, and its warnings when inputs changed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ftframe.commands import main as ftframe_main
from ftframe.io import sha256_file
from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl

TRAIN = {"backend.epochs": 2, "eval.baseline": "false", "threads": 1}


@pytest.fixture(scope="module")
def data_path(tmp_path_factory) -> Path:
    return write_chat_jsonl(tmp_path_factory.mktemp("data") / "toy.jsonl", toy_classification_rows(8),
                            system="Classify.")


@pytest.fixture(scope="module")
def overrides(tiny_model_dir, data_path) -> list[str]:
    return tiny_run_overrides(tiny_model_dir, data_path, **TRAIN)


@pytest.fixture(scope="module")
def first(tmp_path_factory, overrides):
    return run_tiny(tmp_path_factory.mktemp("repro") / "first", overrides)


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "adapter" / "adapter_model.safetensors")


def test_manifest_records_what_the_numbers_depend_on(first, data_path, tiny_model_dir):
    m = manifest(first.run_dir)
    assert m["status"] == "succeeded" and m["started"] <= m["finished"] and m["wall_seconds"] > 0
    assert m["seed"] == 0 and m["config"]["backend"]["epochs"] == 2  # the resolved config
    assert m["inputs"][str(data_path)] == sha256_file(data_path)
    weights = tiny_model_dir / "model.safetensors"
    assert m["inputs"][str(weights)] == sha256_file(weights)  # the base model's files are inputs too
    assert {"config.json", "tokenizer.json"} <= {Path(p).name for p in m["inputs"]}
    assert m["packages"]["torch"] == torch.__version__ and m["packages"]["ftframe"]
    for dist in ("transformers", "peft", "lightning", "hydra-core", "hydra-joblib-launcher",
                 "hydra-submitit-launcher", "hydra-optuna-sweeper"):
        assert m["packages"][dist], dist
    assert set(m["git"]) == {"commit", "dirty"}
    machine = m["machine"]
    assert machine["cpu"] and machine["cpu_threads"] >= machine["cpu_cores"] >= 1
    assert machine["torch_threads"] == 1  # the job's `threads`, set before it was recorded
    assert machine["ram_gib"] > 0 and machine["os"] and machine["gpus"] == [] and machine["cuda"] is False


def test_same_config_data_and_seed_give_identical_results(first, tmp_path, overrides):
    again = run_tiny(tmp_path / "again", overrides)
    assert again.status == first.status == "succeeded"
    assert again.metrics["values"] == first.metrics["values"]
    a, b = adapter(first.run_dir), adapter(again.run_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = adapter(run_tiny(tmp_path / "seed1", [*overrides, "seed=1"]).run_dir)
    assert any(not torch.equal(a[k], c[k]) for k in a)  # the seed matters: the check above can fail


def test_rerun_reproduces_a_run_exactly(first, tmp_path, capsys):
    out = tmp_path / "rerun"
    assert ftframe_main(["rerun", str(first.run_dir), "--output", str(out)]) == 0
    report = json.loads((out / "rerun.json").read_text())
    assert report["ok"] is True and report["verdict"] == "metrics match exactly"
    assert report["adapter_identical"] is True
    assert {r["match"] for r in report["metrics"]} == {"exact"}
    assert not any(w.startswith("input") for w in report["warnings"])
    assert "metrics match exactly" in capsys.readouterr().out
    assert ftframe_main(["rerun", str(first.run_dir), "--output", str(out)]) == 2  # never over a run


def test_rerun_warns_when_an_input_changed(first, tmp_path, data_path, capsys):
    recorded = manifest(first.run_dir)
    run_dir = tmp_path / "run"
    shutil.copytree(first.run_dir, run_dir)
    moved = tmp_path / "toy.jsonl"
    write_chat_jsonl(moved, toy_classification_rows(7), system="Classify.")  # other content, other path
    recorded["config"]["data"]["path"] = str(moved)
    recorded["inputs"] = {str(moved): recorded["inputs"][str(data_path)],
                          str(tmp_path / "gone.bin"): "0" * 64,
                          **{k: v for k, v in recorded["inputs"].items() if k != str(data_path)}}
    recorded["packages"]["torch"] = "0.0.1"
    (run_dir / "manifest.json").write_text(json.dumps(recorded))
    code = ftframe_main(["rerun", str(run_dir), "--output", str(tmp_path / "out"), "--tolerance", "1"])
    assert "warning: input" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "rerun.json").read_text())
    warnings = "\n".join(report["warnings"])
    assert f"input {moved}: content changed" in warnings and "gone.bin: missing" in warnings
    assert "package torch: recorded 0.0.1" in warnings
    assert report["tolerance"] == 1.0
    assert report["adapter_identical"] is False  # other data, other weights: reported, not hidden
    assert code == 1 and report["ok"] is False


def test_rerun_of_a_folder_without_manifest(tmp_path, capsys):
    assert ftframe_main(["rerun", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err
