"""Launching on Ray (imported only when a sweep runs, so Hydra's plugin scan does not import Ray)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


def run_cell(hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig, overrides: list[str],
             idx: int, singleton_state: dict[Any, Any], cwd: str) -> JobReturn:
    """One cell, in a Ray worker: what Hydra's joblib launcher does in a joblib worker."""
    setup_globals()
    Singleton.set_state(singleton_state)
    if Path(cwd).is_dir():  # the submitting directory, where relative sweep and data paths point
        os.chdir(cwd)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, overrides)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    HydraConfig.instance().set_config(sweep_config)
    return run_job(hydra_context=hydra_context, task_function=task_function, config=sweep_config,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    try:
        import ray
    except ImportError as exc:
        raise ImportError("hydra/launcher=ray_cluster needs Ray: pip install 'ftframe[ray]'") from exc
    setup_globals()
    assert launcher.config is not None and launcher.task_function is not None and launcher.hydra_context
    config = launcher.config
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    init = OmegaConf.to_container(launcher.ray.init, resolve=True)
    remote = OmegaConf.to_container(launcher.ray.remote, resolve=True)
    started = not ray.is_initialized()
    if started:
        ray.init(**init)
    log.info(f"Ray ({ray.get_runtime_context().gcs_address}) is launching {len(job_overrides)} jobs, "
             f"ray.remote({', '.join(f'{k}={v}' for k, v in remote.items())}); sweep output dir: {sweep_dir}")
    task = ray.remote(**remote)(run_cell)
    state, cwd = Singleton.get_state(), os.getcwd()
    refs = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        refs.append(task.remote(launcher.hydra_context, launcher.task_function, config, list(overrides), idx,
                                state, cwd))
    results = []
    try:
        for overrides, ref in zip(job_overrides, refs, strict=True):
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayError as exc:  # the worker died (e.g. killed): a failed cell, not a crash
                results.append(JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=exc))
    finally:
        if started:
            ray.shutdown()
    return results
