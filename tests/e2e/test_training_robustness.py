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


# ------------------------------------------------------------------------------ two nodes on loopback
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TWO_NODES = {"trainer.accelerator": "cpu", "trainer.devices": 1, "trainer.num_nodes": 2, "trainer.strategy": "ddp"}


def start_nodes(cmd: list[str], logs: list[Path]) -> list[subprocess.Popen]:
    """Each "node" as a cluster starts it: the same command, its own NODE_RANK, one master address and port
    (Lightning's LightningEnvironment reads them; gloo connects the two over loopback)."""
    port = str(free_port())
    procs = []
    for node, log in enumerate(logs):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
               "NODE_RANK": str(node)}
        for key in ("FTFRAME_DISABLE_PLUGINS", "LOCAL_RANK", "RANK", "WORLD_SIZE", "SLURM_PROCID"):
            env.pop(key, None)
        procs.append(subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env))
    return procs


def wait_all(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 600) -> None:
    for proc, log in zip(procs, logs):
        try:
            assert proc.wait(timeout=timeout) == 0, log.read_text()[-3000:]
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail(f"a node did not finish in {timeout} s:\n{log.read_text()[-3000:]}")


def test_two_nodes_on_loopback_train_like_one_process_with_the_same_global_batch(tmp_path, tiny_model_dir, data_path):
    # 8 training examples: batch 4 on each of 2 nodes and batch 8 in one process are the same global batch
    # (all of them, so the data order cannot differ); 3 optimizer steps.
    extra = {"backend.epochs": 3, "backend.early_stopping_patience": "null", "exporters": "[adapter]"}
    run_dir, logs = tmp_path / "nodes", [tmp_path / "node0.log", tmp_path / "node1.log"]
    wait_all(start_nodes(command(tiny_model_dir, data_path, run_dir, **TWO_NODES, **extra), logs), logs)
    single_dir = tmp_path / "single"
    done = finish(command(tiny_model_dir, data_path, single_dir, **{**extra, "backend.batch_size": 8}),
                  tmp_path / "single.log")
    assert done.returncode == 0, (tmp_path / "single.log").read_text()[-3000:]

    train = json.loads((run_dir / "metrics.json").read_text())["train"]
    assert train["world_size"] == 2 and {r["rank"] for r in train["ranks"]} == {0, 1}
    assert all(r["batches"] == 3 for r in train["ranks"]) and train["steps"] == 3
    # One set of outputs, by rank 0 (node 0): one manifest, one evaluation, one export.
    assert [p.relative_to(run_dir) for p in run_dir.rglob("manifest.json")] == [Path("manifest.json")]
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "succeeded"
    node0, node1 = (log.read_text() for log in logs)
    assert node0.count("evaluate tuned model") == 1 and "evaluate tuned model" not in node1
    single = json.loads((single_dir / "metrics.json").read_text())["train"]
    assert single["world_size"] == 1 and single["steps"] == 3
    # DDP averages the two nodes' token-mean losses, one process takes the mean over all tokens: with
    # rows of near-equal length the two differ by a fraction of a percent.
    for mine, theirs in zip(train["history"], single["history"], strict=True):
        assert mine["val/loss"] == pytest.approx(theirs["val/loss"], rel=1e-2)
    # The tuned weights: relative L2 distance of the whole adapter (element-wise bounds do not fit: Adam's
    # first steps move every weight by about lr whatever its gradient, so a near-zero gradient whose sign
    # differs between the two reductions flips that weight's step). Measured: 1.2%.
    a, b = weights_of(run_dir, "adapter"), weights_of(single_dir, "adapter")
    assert a.keys() == b.keys()
    distance = sum(float((a[k] - b[k]).pow(2).sum()) for k in a) ** 0.5 / sum(float(b[k].pow(2).sum()) for k in b) ** 0.5
    assert distance < 0.05, distance
    mine, theirs = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, single_dir))
    assert mine["test"]["values"] == theirs["test"]["values"]
    predicted = [[json.loads(line)["predicted"] for line in (d / "predictions.jsonl").read_text().splitlines()]
                 for d in (run_dir, single_dir)]
    assert predicted[0] == predicted[1]


def test_killing_one_node_then_restarting_both_resumes_from_the_last_checkpoint(tmp_path, tiny_model_dir, data_path):
    run_dir = tmp_path / "run"
    cmd = command(tiny_model_dir, data_path, run_dir, **TWO_NODES, **LONG)
    logs = [tmp_path / "node0.log", tmp_path / "node1.log"]
    procs = start_nodes(cmd, logs)
    last = run_dir / "checkpoints" / "last.ckpt"
    wait_for(last, procs[0], logs[0])
    time.sleep(1.0)
    procs[1].send_signal(signal.SIGKILL)  # node 1 dies
    try:  # node 0 loses its peer at the next collective (gloo); a scheduler would end it anyway
        procs[0].wait(timeout=120)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        procs[0].wait()
    killed_at = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert 0 < killed_at < 40
    assert json.loads((run_dir / "manifest.json").read_text())["status"] != "succeeded"

    logs = [tmp_path / "again0.log", tmp_path / "again1.log"]
    wait_all(start_nodes(cmd, logs), logs)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "succeeded"
    train = manifest["metrics"]["train"]
    assert train["resumed_from"] == str(last) and train["world_size"] == 2
    assert train["steps"] == 40 and train["epochs_run"] == 40  # the whole schedule, not 40 more steps
    assert all(r["batches"] < 40 for r in train["ranks"])  # both nodes trained only what was left
    assert "resuming from" in logs[0].read_text()


# ------------------------------------------------------------------------------------ FSDP on the CPU
def weights_of(run_dir: Path, export: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted((run_dir / export).glob("*.safetensors"))
    assert files, f"no safetensors in {run_dir / export}"
    return {k: v for f in files for k, v in load_file(f).items()}


@pytest.mark.parametrize(("backend", "export"), [("lora", "adapter"), ("full", "merged")])
def test_fsdp_on_two_cpu_processes_shards_and_trains_like_ddp(tmp_path, tiny_model_dir, data_path, backend, export):
    """torch's FSDP2 through Lightning's ModelParallelStrategy over gloo: every decoder layer sharded over
    the two processes, the same steps as DDP on the same batches, weights equal within float tolerance."""
    extra = {"backend": backend, "backend.epochs": 2, "backend.early_stopping_patience": "null", "exporters": f"[{export}]"}
    if backend == "full":
        extra.update({"backend.r": "null", "backend.alpha": "null"})
    results = {}
    for trainer in ("fsdp_cpu", "ddp_cpu"):
        run_dir, log = tmp_path / trainer, tmp_path / f"{trainer}.log"
        cmd = [c for c in command(tiny_model_dir, data_path, run_dir, trainer=trainer, **extra)
               if not (backend == "full" and c.startswith(("backend.r=", "backend.alpha=")))]
        done = finish(cmd, log)
        assert done.returncode == 0, log.read_text()[-3000:]
        results[trainer] = json.loads((run_dir / "metrics.json").read_text())["train"]
        assert json.loads((run_dir / "manifest.json").read_text())["exports"][export]["verified"] is True
    fsdp, ddp = results["fsdp_cpu"], results["ddp_cpu"]
    assert fsdp["world_size"] == ddp["world_size"] == 2 and fsdp["steps"] == ddp["steps"] == 2
    assert fsdp["sharded_layers"] == 3 and ddp["sharded_layers"] is None  # 2 decoder layers + the root
    a, b = weights_of(tmp_path / "fsdp_cpu", export), weights_of(tmp_path / "ddp_cpu", export)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), rtol=1e-3, atol=1e-5), key


def test_a_killed_fsdp_run_resumes_from_its_last_checkpoint(tmp_path, tiny_model_dir, data_path):
    run_dir, log = tmp_path / "run", tmp_path / "first.log"
    cmd = command(tiny_model_dir, data_path, run_dir, trainer="fsdp_cpu", **{**LONG, "backend.epochs": 20})
    proc = start(cmd, log)
    last = run_dir / "checkpoints" / "last.ckpt"
    wait_for(last, proc, log)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)  # rank 0 (and the launcher of rank 1) dies; rank 1 loses its peer
    proc.wait(timeout=60)
    time.sleep(3.0)
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert 0 < saved["global_step"] < 20
    assert saved["state_dict"] and all("lora_" in k for k in saved["state_dict"])  # one full file, adapter only

    done = finish(cmd, tmp_path / "second.log")
    assert done.returncode == 0, (tmp_path / "second.log").read_text()[-3000:]
    train = json.loads((run_dir / "metrics.json").read_text())["train"]
    assert train["resumed_from"] == str(last) and train["sharded_layers"] == 3
    assert train["steps"] == 20 and train["epochs_run"] == 20
    assert all(r["batches"] < 20 for r in train["ranks"])
