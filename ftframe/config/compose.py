"""Compose the run config outside ``@hydra.main`` (tests, ``ftframe validate``, the CLI's pre-check)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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


def task_choice(overrides: Sequence[str]) -> list[str]:
    """``+task=NAME`` -> ``task=NAME``: conf/config.yaml declares the ``task`` group (``task: null``), so that
    the task's backend-keyed options (``conf/task_backend/NAME/BACKEND.yaml``) merge after the task itself;
    Hydra appends a ``+group`` after every default, where it would come last. Both spellings select a task."""
    return [o[1:] if o.startswith("+task=") else o for o in overrides]


def option_owners(registry: Registry) -> Callable[[str], list[str]]:
    """For ``backend.KEY``: the backends whose options include ``KEY`` (for "an option of lora, qlora")."""
    import dataclasses

    def owners(full_key: str) -> list[str]:
        group, _, key = full_key.partition(".")
        if group != "backend" or not key or "." in key:
            return []
        return [n for n, cls in sorted(registry.classes["backend"].items())
                if key in {f.name for f in dataclasses.fields(cls.Config)}]

    return owners


def compose(overrides: Sequence[str] = (), *, registry: Registry) -> DictConfig:
    """The composed (unresolved) config for ``overrides``; config errors become one :class:`ConfigError`
    listing every override's problem (unknown keys, wrong types, unknown options), each with its
    suggestion."""
    store_schemas(registry)
    overrides = task_choice(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            try:
                return hydra_compose(config_name="config", overrides=list(overrides))
            except ConfigError:
                raise
            except Exception as exc:
                owners = option_owners(registry)
                if friendly(exc, group_options, owners) is None:
                    raise
                raise ConfigError(_every_problem(list(overrides), exc, owners)) from exc
    finally:
        GlobalHydra.instance().clear()


def _every_problem(overrides: list[str], first: Exception, owners: Any = None) -> list[str]:
    """Each override's own composition error: Hydra stops at the first one, so the overrides are composed
    again one at a time on top of those that passed (group choices first, as Hydra applies them before
    values). Only on the error path; a handful of extra compositions (~0.1 s each)."""
    def selects(override: str) -> bool:  # a group choice or a whole top-level key (``backend=full``, ``seed=1``)
        return "." not in override.split("=", 1)[0].lstrip("+~")

    found: dict[str, int] = {}  # message -> position of its override on the command line
    passed: list[str] = []
    order = sorted(range(len(overrides)), key=lambda i: not selects(overrides[i]))
    for i in order:
        try:
            hydra_compose(config_name="config", overrides=[*passed, overrides[i]])
        except Exception as exc:  # noqa: BLE001 - each is turned into its message, or the first error stands
            msg = friendly(exc, group_options, owners) or f"{overrides[i]}: {str(exc).strip()}"
            found.setdefault(msg, i)  # a broken task file fails every later override the same way: once
            continue
        passed.append(overrides[i])
    return sorted(found, key=found.__getitem__) or [friendly(first, group_options, owners) or str(first)]
