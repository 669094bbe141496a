"""OmegaConf resolvers available in every config."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ftframe.errors import ConfigError


def package_file(package: str, relative: str) -> str:
    """``${package_file:pkg,sub/path}``: a file shipped inside an installed package (e.g. a plugin's data)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"${{package_file:{package},{relative}}}: package {package!r} is not installed.")
    return str(Path(next(iter(spec.submodule_search_locations))) / relative)


def slurm_tasks_per_node(devices: Any) -> int:
    """``${slurm_tasks_per_node:${trainer.devices}}``: one SLURM task per device, which Lightning's SLURM
    environment requires (``--ntasks-per-node`` must equal ``trainer.devices``)."""
    if isinstance(devices, Sequence) and not isinstance(devices, str):  # devices=[0,1]: those devices
        return len(devices)
    if isinstance(devices, int) or str(devices).isdigit():
        return int(devices)
    raise ConfigError(f"hydra/launcher=slurm: trainer.devices={devices!r} does not say how many tasks SLURM "
                      "starts on each node; set trainer.devices to a number (one task per GPU or CPU process).")


def slurm_gpus_per_node(accelerator: Any, devices: Any) -> int | None:
    """``${slurm_gpus_per_node:${trainer.accelerator},${trainer.devices}}``: a GPU per task on a GPU trainer,
    no GPU request (None: no ``--gpus-per-node`` line) otherwise."""
    return slurm_tasks_per_node(devices) if str(accelerator) in ("gpu", "cuda") else None


def register_resolvers() -> None:
    from ftframe.config.portable import RESOLVER, resolve

    OmegaConf.register_new_resolver("package_file", package_file, replace=True)
    OmegaConf.register_new_resolver(RESOLVER, resolve, replace=True)  # ${portable:train.epochs,3}
    OmegaConf.register_new_resolver("slurm_tasks_per_node", slurm_tasks_per_node, replace=True)
    OmegaConf.register_new_resolver("slurm_gpus_per_node", slurm_gpus_per_node, replace=True)
