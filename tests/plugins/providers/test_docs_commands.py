"""The provider commands of docs/providers.md, as written there, run end to end against the loopback fake
providers: the real CLI in a subprocess, on the shipped triage task. Only the transport differs: the
endpoints come from ``OPENAI_BASE_URL`` / ``TOGETHER_BASE_URL`` (as the SDKs read them), a provider run
polls without waiting (``backend.poll_seconds=0``), and outputs go below the test's folder."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "docs" / "providers.md"


def doc_commands() -> list[str]:
    """The ``ftframe``/``python -m ftframe`` lines of the first shell block of docs/providers.md."""
    block = re.search(r"```bash\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert block, "docs/providers.md has no bash block"
    lines = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line.startswith(("ftframe ", "python -m ftframe "))]


def test_the_docs_show_provider_commands():
    commands = doc_commands()
    assert any("backend=openai" in c for c in commands) and any("backend=together" in c for c in commands)


@pytest.mark.parametrize("command", doc_commands())
def test_docs_command_runs_against_the_fake_providers(command, openai_server, together_server, tmp_path):
    args = shlex.split(command)
    env = {**os.environ, "OPENAI_BASE_URL": f"{openai_server.url}/v1", "TOGETHER_BASE_URL": f"{together_server.url}/v1"}
    if args[0] == "ftframe":
        proc = subprocess.run([sys.executable, "-m", "ftframe.commands", *args[1:]], capture_output=True, text=True,
                              env=env, timeout=300)
        assert proc.returncode == 0 and proc.stdout.startswith("OK: task triage"), proc.stderr
        assert openai_server.requests == [] and together_server.requests == []  # validate sends nothing
        return
    assert "-m" not in args[3:], "a sweep in the docs' provider block: give it its own test (cells are local too)"
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, *args[1:], "backend.poll_seconds=0", "backend.retry_base_seconds=0.01",
                           f"hydra.run.dir={run_dir}", "trainer.enable_progress_bar=false"],
                          capture_output=True, text=True, env=env, timeout=600)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    # The run finished: trained at the fake, evaluated through its chat endpoint, gated (the nearest-neighbour
    # fake may miss triage's gate: exit 1 with gate_failed is a finished run), and exported its model card.
    assert manifest["status"] in ("succeeded", "gate_failed"), proc.stderr[-3000:]
    assert proc.returncode == (0 if manifest["status"] == "succeeded" else 1)
    server = openai_server if "backend=openai" in args else together_server
    assert server.violations == [] and len(server.jobs) == 1
    (job,) = server.jobs.values()
    assert manifest["metrics"]["trained_model"]["remote_id"] == job.get("fine_tuned_model", job.get("model_output_name"))
    assert manifest["config"]["task"]["name"] == "triage" and manifest["config"]["eval"]["mode"] == "generate"
    train = manifest["config"]["train"]
    assert (train["epochs"], train["batch_size"], train["lr"]) == (3 if "train.epochs=3" in args else 1, 8, None)
    if manifest["status"] == "succeeded":
        assert (run_dir / "MODEL_CARD.md").is_file()


@pytest.mark.slow
def test_a_matrix_of_a_local_and_a_provider_backend(openai_server, tmp_path, tiny_model_dir):
    """docs/matrices.md's ``python -m ftframe -m +task=triage backend=lora,openai``: one cell trains LoRA here
    (on the tiny model, small settings), the other at the fake OpenAI (its default poll interval: every cell
    gets the same overrides, and ``backend.poll_seconds`` is no lora option); the report's cells are the backends."""
    import csv

    sweep = tmp_path / "sweep"
    env = {**os.environ, "OPENAI_BASE_URL": f"{openai_server.url}/v1"}
    proc = subprocess.run([sys.executable, "-m", "ftframe", "-m", "+task=triage", "backend=lora,openai", "model=hf_local",
                           f"model.path={tiny_model_dir}", "eval.baseline=false", "eval.limit=24", "threads=1",
                           "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with (sweep / "results_cells.csv").open() as f:
        cells = {c["backend"]: c for c in csv.DictReader(f)}
    assert set(cells) == {"lora", "openai"} and all(c["finished"] == "1" for c in cells.values())
    assert len(openai_server.jobs) == 1 and openai_server.violations == []
