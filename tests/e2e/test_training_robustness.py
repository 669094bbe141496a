"""Real processes: a 2-process DDP job on the CPU (gloo), a run killed with SIGKILL and resumed, Ctrl-C.

Each test runs ``python -m ftframe`` as a user would, on the tiny model, and reads the run dir.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ftframe.testing import tiny_run_overrides, toy_classification_rows, write_chat_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_path(tmp_path_factory) -> Path:
    return write_chat_jsonl(tmp_path_factory.mktemp("data") / "toy.jsonl", toy_classification_rows(8), system="Classify.")


def command(model_dir: Path, data: Path, run_dir: Path, **extra) -> list[str]:
    overrides = tiny_run_overrides(model_dir, data, **{"eval.baseline": False, "threads": 1, **extra})
    return [sys.executable, "-m", "ftframe", *overrides, f"hydra.run.dir={run_dir}"]


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FTFRAME_DISABLE_PLUGINS", None)
    # Ctrl-C as at a terminal: a suite started in the background (`cmd &`, nohup) inherits an ignored
    # SIGINT, and Python keeps it ignored in the child, so the run would never see the signal.
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {path.name} appeared:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {path.name} after {timeout} s")
        time.sleep(0.2)


def finish(cmd: list[str], log: Path) -> subprocess.CompletedProcess:
    env = {**os.environ}
    env.pop("FTFRAME_DISABLE_PLUGINS", None)
    with log.open("w") as out:
        return subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=900, check=False)


def test_ddp_two_cpu_processes_train_and_rank_zero_writes_once(tmp_path, tiny_model_dir, data_path):
    run_dir, log = tmp_path / "run", tmp_path / "out.log"
    done = finish(command(tiny_model_dir, data_path, run_dir, **{"trainer": "ddp_cpu", "backend.epochs": 2}), log)
    out = log.read_text()
    assert done.returncode == 0, out[-3000:]
    train = json.loads((run_dir / "metrics.json").read_text())["train"]
    assert train["world_size"] == 2
    ranks = {r["rank"]: r for r in train["ranks"]}
    assert set(ranks) == {0, 1} and all(r["batches"] > 0 and r["tokens"] > 0 for r in ranks.values())
    # 8 training examples, batch 4, two ranks: one optimizer step per epoch; each rank saw half the data.
    assert train["steps"] == 2 and train["trained_tokens"] == ranks[0]["tokens"] + ranks[1]["tokens"]
    # One set of outputs: one manifest, one evaluation, one export, all by rank 0.
    assert [p.relative_to(run_dir) for p in run_dir.rglob("manifest.json")] == [Path("manifest.json")]
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "succeeded"
    assert out.count("evaluate tuned model") == 1 and out.count("6/6 export") == 1
    assert len((run_dir / "predictions.jsonl").read_text().splitlines()) == 4
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert (run_dir / "train_ddp_process_1.log").is_file()  # the second rank's own Hydra job log


LONG = {"backend.epochs": 40, "backend.early_stopping_patience": "null", "trainer.checkpoint_every_n_steps": 1,
        "exporters": "[adapter]"}


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path, tiny_model_dir, data_path):
    run_dir, log = tmp_path / "run", tmp_path / "first.log"
    cmd = command(tiny_model_dir, data_path, run_dir, **LONG)
    proc = start(cmd, log)
    last = run_dir / "checkpoints" / "last.ckpt"
    wait_for(last, proc, log)
    time.sleep(1.0)  # a few more steps, then the hard kill (no handler runs)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    killed_at = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert 0 < killed_at < 80
    assert json.loads((run_dir / "manifest.json").read_text())["status"] != "succeeded"

    done = finish(cmd, tmp_path / "second.log")
    assert done.returncode == 0, (tmp_path / "second.log").read_text()[-3000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "succeeded"
    train = json.loads((run_dir / "metrics.json").read_text())["train"]
    assert train["resumed_from"] == str(last)
    assert train["steps"] == 80 and train["epochs_run"] == 40  # the whole schedule, not 80 more steps
    assert train["ranks"][0]["batches"] < 80  # this session trained only what was left
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_ctrl_c_saves_a_checkpoint_and_marks_the_run_interrupted(tmp_path, tiny_model_dir, data_path):
    run_dir, log = tmp_path / "run", tmp_path / "first.log"
    # 400 steps: the run cannot finish in the second before the signal, however fast the machine is
    cmd = command(tiny_model_dir, data_path, run_dir, **{**LONG, "backend.epochs": 200})
    proc = start(cmd, log)
    last = run_dir / "checkpoints" / "last.ckpt"
    wait_for(last, proc, log)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    assert proc.returncode != 0, log.read_text()[-3000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted", log.read_text()[-3000:]
    assert "Ctrl-C" in manifest["error"]
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert 0 < saved["global_step"] < 400 and saved["state_dict"]
    assert all("lora_" in k for k in saved["state_dict"])  # adapter-only checkpoints
    assert not (run_dir / "adapter").exists()  # nothing exported from an interrupted run
