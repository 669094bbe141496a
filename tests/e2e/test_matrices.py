"""Multiruns through the real CLI (``python -m ftframe -m``) on the tiny model: the report callback, a
failing cell that does not stop the sweep, resuming a sweep, Optuna, and the joblib and submitit launchers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from ftframe.testing import toy_classification_rows, write_chat_jsonl

TINY = {"task.name": "tiny", "backend.epochs": 1, "backend.batch_size": 4, "backend.r": 4, "backend.alpha": 8,
        "eval.baseline": "false", "eval.max_new_tokens": 4, "trainer.enable_progress_bar": "false", "threads": 1,
        "split.train": 0.5, "split.val": 0.25, "split.test": 0.25}


def multirun(monkeypatch, *args: str) -> int:
    """``python -m ftframe -m ARGS`` in this process; returns the exit status."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from ftframe.cli import main

    monkeypatch.setattr(sys, "argv", ["ftframe", "-m", *args])
    try:
        main()
        return 0
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:  # leave no Hydra job state behind for later tests' manifests
        HydraConfig.instance().cfg = None  # type: ignore[assignment]
        GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def good_data(tmp_path_factory) -> Path:
    return write_chat_jsonl(tmp_path_factory.mktemp("data") / "good.jsonl", toy_classification_rows(6),
                            system="Classify.")


def tiny_args(model_dir: Path, **extra: object) -> list[str]:
    return [f"{k}={v}" for k, v in {"model": "hf_local", "model.path": model_dir, **TINY, **extra}.items()]


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def runs_by_data(sweep: Path) -> dict[str, Path]:
    out = {}
    for d in sorted(p for p in sweep.iterdir() if (p / "manifest.json").is_file()):
        out[Path(manifest(d)["config"]["data"]["path"]).name] = d
    return out


def test_failed_cell_is_recorded_and_a_rerun_resumes(monkeypatch, tmp_path, tiny_model_dir, good_data):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n' * 5)  # a bad row: the job fails once it has started
    sweep = tmp_path / "sweep"
    args = [*tiny_args(tiny_model_dir), f"data.path={good_data},{bad}", f"hydra.sweep.dir={sweep}"]

    assert multirun(monkeypatch, *args) == 1  # the sweep went on, and says a cell failed
    cells = runs_by_data(sweep)
    assert set(cells) == {"good.jsonl", "bad.jsonl"}
    good_first, failed = manifest(cells["good.jsonl"]), manifest(cells["bad.jsonl"])
    assert good_first["status"] == "succeeded"
    assert failed["status"] == "failed" and failed["error"].startswith("DataError: ") and "'messages'" in failed["error"]
    assert "Traceback" in failed["traceback"] and failed["hydra"]["overrides"][-1] == f"data.path={bad}"
    md = (sweep / "results.md").read_text()
    assert "2 runs, 2 cells, 1 not finished" in md and "missing or empty 'messages' list" in md
    assert (sweep / "results.csv").is_file() and (sweep / "results.html").is_file() and (sweep / "results.png").is_file()

    write_chat_jsonl(bad, toy_classification_rows(6), system="Classify.")  # fix the data, run the sweep again
    assert multirun(monkeypatch, *args) == 0
    again = runs_by_data(sweep)
    assert manifest(again["good.jsonl"]) == good_first  # finished: skipped, untouched
    assert manifest(again["bad.jsonl"])["status"] == "succeeded"
    assert "2 runs, 2 cells, 0 not finished" in (sweep / "results.md").read_text()


def test_a_config_change_reruns_a_finished_cell(monkeypatch, tmp_path, tiny_model_dir, good_data):
    sweep = tmp_path / "sweep"
    base = [*tiny_args(tiny_model_dir), f"data.path={good_data}", f"hydra.sweep.dir={sweep}"]
    assert multirun(monkeypatch, *base, "seed=0") == 0
    first = manifest(sweep / "0")
    # same overrides, different resolved config (as after a change of code defaults): not the same cell
    assert multirun(monkeypatch, *base, "seed=0", "eval.batch_size=8") == 0
    second = manifest(sweep / "0")
    assert second["started"] >= first["started"] and second["config"]["eval"]["batch_size"] == 8
    # the old attempt is kept apart (training must not resume from its checkpoints) and is no cell
    assert manifest(sweep / "0" / "superseded" / "0") == first
    assert not (sweep / "0" / "checkpoints" / "best-v1.ckpt").exists()
    assert "1 runs, 1 cells, 0 not finished" in (sweep / "results.md").read_text()


def test_optuna_sweep_optimises_the_task_metric(monkeypatch, tmp_path, tiny_model_dir, good_data):
    sweep = tmp_path / "sweep"
    assert multirun(monkeypatch, *tiny_args(tiny_model_dir), f"data.path={good_data}", "+sweep=lr_search",
                    "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}") == 0
    trials = [manifest(sweep / str(i)) for i in range(2)]
    assert all(t["status"] == "succeeded" for t in trials)
    lrs = {t["config"]["backend"]["lr"] for t in trials}
    assert len(lrs) == 2 and all(1e-4 <= lr <= 1e-2 for lr in lrs)  # the search space, not the task's lr
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(t["metrics"]["values"]["macro_f1"] for t in trials)
    assert "backend.lr" in (sweep / "results.md").read_text()


# A private Ray instance on this machine for the sweep (2 CPUs, one per cell), bound to loopback.
LOCAL_RAY = ["hydra.launcher.ray.init.address=local", "++hydra.launcher.ray.init.num_cpus=2",
             "++hydra.launcher.ray.init._node_ip_address=127.0.0.1", "++hydra.launcher.ray.init.include_dashboard=false",
             "hydra.launcher.ray.remote.num_cpus=1"]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["parallel", "submitit_local", "ray_cluster"])
def test_launcher_runs_cells_in_other_processes(monkeypatch, tmp_path, tiny_model_dir, good_data, launcher):
    extra = []
    if launcher == "ray_cluster":
        pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'ftframe[ray]')")
        monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")  # Ray would report usage to its servers
        extra = LOCAL_RAY
    sweep = tmp_path / "sweep"
    assert multirun(monkeypatch, *tiny_args(tiny_model_dir), f"data.path={good_data}", "seed=0,1",
                    f"hydra/launcher={launcher}", *extra, f"hydra.sweep.dir={sweep}") == 0
    runs = [manifest(sweep / str(i)) for i in range(2)]
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"] and [r["seed"] for r in runs] == [0, 1]
    expected = {"parallel": "JoblibLauncher", "submitit_local": "LocalLauncher", "ray_cluster": "RayLauncher"}[launcher]
    assert all(r["hydra"]["launcher"].endswith(expected) for r in runs)
    assert "2 runs, 1 cells, 0 not finished" in (sweep / "results.md").read_text()


def _sbatch_stand_in(tmp_path: Path) -> tuple[Path, Path]:
    """``sbatch`` and ``srun`` on PATH: sbatch records its arguments and the script it is given, then refuses
    the job (there is no cluster to run it), so the test sees what the launcher hands a SLURM controller."""
    record, bin_dir = tmp_path / "submitted", tmp_path / "bin"
    record.mkdir()
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text("#!/bin/sh\n"
                      f'printf "%s\\n" "$@" > {record}/argv\n'
                      f'cp "$1" {record}/script.sh\n'
                      'echo "sbatch: error: test stand-in: submission recorded, no cluster to run it" >&2\n'
                      "exit 1\n")
    sbatch.chmod(0o755)
    srun = bin_dir / "srun"  # submitit looks for it on the submitting host; only the cluster's job runs it
    srun.write_text("#!/bin/sh\necho 'srun: test stand-in, not a cluster' >&2\nexit 1\n")
    srun.chmod(0o755)
    return bin_dir, record


@pytest.mark.parametrize(("trainer", "nodes", "tasks", "gpus"), [("slurm", 2, 4, 4), ("gpu", 1, 1, 1), ("cpu", 1, 1, None)])
def test_slurm_submission_asks_for_what_the_trainer_needs(monkeypatch, tmp_path, tiny_model_dir, good_data,
                                                          trainer, nodes, tasks, gpus):
    import shlex

    from lightning.fabric.plugins.environments import SLURMEnvironment
    from submitit.core.utils import DelayedSubmission

    bin_dir, record = _sbatch_stand_in(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    sweep = tmp_path / "sweep"
    setup = ["source /opt/ftframe/.venv/bin/activate", "export HF_HOME=/shared/hf"]
    status = multirun(monkeypatch, *tiny_args(tiny_model_dir), f"data.path={good_data}", "seed=0,1",
                      f"trainer={trainer}", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                      "hydra.launcher.account=proj42", f"hydra.launcher.setup=[{','.join(repr(s) for s in setup)}]",
                      f"hydra.sweep.dir={sweep}")
    assert status == 1  # the refused submission is reported as the sweep's failure, not hidden

    script = (record / "script.sh").read_text()
    assert (record / "argv").read_text().split() == [str(next(sweep.glob(".submitit/.submission_file_*.sh")))]
    flags = dict(line.removeprefix("#SBATCH --").split("=", 1) for line in script.splitlines()
                 if line.startswith("#SBATCH --"))
    assert flags["nodes"] == str(nodes) and flags["ntasks-per-node"] == str(tasks)
    assert flags.get("gpus-per-node") == (None if gpus is None else str(gpus))
    assert flags["cpus-per-task"] == "8" and flags["mem"] == "32GB" and flags["time"] == "120"
    assert flags["partition"] == "gpu" and flags["account"] == "proj42" and flags["job-name"] == "ftframe"
    assert flags["array"] == "0-1%2"  # one array task per cell; at most min(cells, array_parallelism) at once
    assert flags["output"] == f"{sweep}/.submitit/%A_%a/%A_%a_0_log.out"
    # the environment: the setup lines, then the command every task runs under srun
    lines = script.splitlines()
    assert lines[lines.index("# setup") + 1:lines.index("# setup") + 3] == setup
    assert "export SUBMITIT_EXECUTOR=slurm" in lines
    command = shlex.split(lines[lines.index("export SUBMITIT_EXECUTOR=slurm") + 1])
    assert command[:2] == ["srun", "--unbuffered"]
    assert command[-5:] == [sys.executable, "-u", "-m", "submitit.core._submit", f"{sweep}/.submitit/%j"]
    # what each array task unpickles and calls: the launcher with its cell's overrides
    cells = sorted(DelayedSubmission.load(p).args[0] for p in (sweep / ".submitit").glob("*.pkl"))
    assert [[o for o in c if o.startswith("seed=")] for c in cells] == [["seed=0"], ["seed=1"]]
    assert all(f"trainer={trainer}" in c and f"data.path={good_data}" in c for c in cells)
    # Lightning's own SLURM check, fed the allocation this script asks for, accepts the trainer's devices
    job_cfg = DelayedSubmission.load(next((sweep / ".submitit").glob("*.pkl"))).function.config
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", flags["ntasks-per-node"])
    monkeypatch.setenv("SLURM_NNODES", flags["nodes"])
    SLURMEnvironment().validate_settings(num_devices=job_cfg.trainer.devices, num_nodes=job_cfg.trainer.num_nodes)
