"""Compose the run config outside ``@hydra.main`` (tests, ``ftframe validate``, the CLI's pre-check)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from ftframe.config.errors import friendly
from ftframe.config.plugin_options import store_schemas
from ftframe.errors import ConfigError
from ftframe.plugins import Registry


def config_dir() -> Path:
    """The ``conf/`` folder shipped beside the ``ftframe`` package."""
    return Path(__file__).resolve().parents[2] / "conf"


def group_options(group: str) -> list[str]:
    """Options of a config group: plugin schemas in the ConfigStore plus YAML files in ``conf/``."""
    from hydra.core.config_store import ConfigStore

    try:
        stored = [n.removesuffix(".yaml") for n in ConfigStore.instance().list(group)]
    except OSError:
        stored = []
    files = [p.stem for p in (config_dir() / group).glob("*.yaml")]
    return sorted(set(stored) | set(files))


def compose(overrides: Sequence[str] = (), *, registry: Registry) -> DictConfig:
    """The composed (unresolved) config for ``overrides``; config errors become :class:`ConfigError`."""
    store_schemas(registry)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides))
    except ConfigError:
        raise
    except Exception as exc:
        msg = friendly(exc, group_options)
        if msg is None:
            raise
        raise ConfigError(msg) from exc
    finally:
        GlobalHydra.instance().clear()
