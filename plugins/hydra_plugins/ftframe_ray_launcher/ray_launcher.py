"""The launcher's config (``hydra/launcher=ftframe_ray``) and class; Ray is imported only when it launches.

No ``from __future__ import annotations`` here: Hydra's plugin scan runs this module before it is in
``sys.modules``, where ``dataclasses`` looks string annotations up."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class RayOptions:
    init: dict[str, Any] = field(default_factory=lambda: {"address": None})
    """Keyword arguments of ``ray.init`` (address: ``auto``, ``local``, ``HOST:6379`` or null for RAY_ADDRESS)."""
    remote: dict[str, Any] = field(default_factory=lambda: {"num_cpus": 1, "num_gpus": 0, "max_retries": 0})
    """Options of ``ray.remote`` for each cell's task: its resources, retries."""


@dataclass
class RayLauncherConf:
    _target_: str = "hydra_plugins.ftframe_ray_launcher.ray_launcher.RayLauncher"
    ray: RayOptions = field(default_factory=RayOptions)


ConfigStore.instance().store(group="hydra/launcher", name="ftframe_ray", node=RayLauncherConf, provider="ftframe")


class RayLauncher(Launcher):
    """Submits every cell as one ``ray.remote`` task and waits for all of them."""

    def __init__(self, ray: DictConfig) -> None:
        self.ray = ray
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.ftframe_ray_launcher._core import launch

        return launch(self, job_overrides, initial_job_idx)
