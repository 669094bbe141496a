"""scripts/gpu_check.py on a machine without CUDA: every check's config is validated, then skipped."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the script runs the checks themselves")


def _script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_without_cuda_every_check_is_validated_then_skipped(tmp_path):
    names = [c.name for c in _script().CHECKS]
    assert {"qlora-4bit", "lora-bf16-packing-sdpa", "ddp-all-gpus"} <= set(names)
    out = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "runs"), "--json", str(tmp_path / "rows.json")],
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [r["check"] for r in rows] == names
    for r in rows:
        assert r["result"] == "skipped" and r["note"] == "config valid; no CUDA device: skipped", r
        assert r["tokens_per_second"] is None and r["peak_gpu_memory"] is None
    table = [line for line in out.stdout.splitlines() if line.startswith("|")]
    assert table[0].startswith("| check | what | result | tokens/s | peak GPU memory |")
    assert len(table) == 2 + len(names) and all("no CUDA device: skipped" in line for line in table[2:])
    assert not any((tmp_path / "runs" / n).exists() for n in names)  # nothing ran


def test_a_check_whose_config_is_wrong_fails_on_any_machine(tmp_path):
    gpu_check = _script()
    bad = gpu_check.Check("bad", "a kernel ftframe does not have", ("backend=lora", "backend.attention=flash"))
    rows, status = gpu_check.check_rows([bad, gpu_check.CHECKS[0]], tmp_path, timeout=1)
    assert status == 1 and [r.result for r in rows] == ["fail", "skipped"]
    assert rows[0].note.startswith("config: ") and "backend.attention" in rows[0].note
