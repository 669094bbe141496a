"""Plugin ``Config`` dataclasses as Hydra schemas, and validated plugin options.

Single-choice groups (``data``, ``model``, ``backend``) store a node per plugin with an extra ``name``
field naming the choice; multi-choice groups (``metrics``, ``exporters``, ``judges``) store each plugin's
options at ``<group>.<name>``, so ``metrics=[macro_f1,accuracy]`` composes with no YAML file.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ftframe.api import Plugin
from ftframe.config.errors import friendly
from ftframe.config.resolvers import register_resolvers
from ftframe.config.schema import RunSchema
from ftframe.engine.data_source import AUTO, AutoDataConfig
from ftframe.errors import ConfigError

SINGLE_CHOICE = {"data_format": "data", "model_source": "model", "backend": "backend"}
MULTI_CHOICE = {"metric": "metrics", "exporter": "exporters", "judge": "judges"}


def node_class(cls: type[Plugin]) -> type:
    """``cls.Config`` plus a ``name`` field defaulting to the plugin's registry name."""
    return dataclasses.make_dataclass(
        f"{cls.__name__}Options",
        [("name", str, dataclasses.field(default=cls.name))],
        bases=(cls.Config,),
    )


def store_schemas(registry: Any) -> None:
    """Put the run schema and every plugin's schema into Hydra's ConfigStore (idempotent)."""
    register_resolvers()
    cs = ConfigStore.instance()
    cs.store(name="ftframe_schema", node=RunSchema)
    cs.store(group="data", name=AUTO, node=AutoDataConfig)
    for kind, group in SINGLE_CHOICE.items():
        for name, cls in registry.classes[kind].items():
            cs.store(group=group, name=name, node=node_class(cls))
    for kind, group in MULTI_CHOICE.items():
        for name, cls in registry.classes[kind].items():
            cs.store(group=group, name=name, node=cls.Config, package=f"{group}.{name}")


def build_config(cls: type[Plugin], options: Any, *, key: str) -> Any:
    """Validate ``options`` (a mapping, DictConfig or None) against ``cls.Config``; return the dataclass.

    ``key`` is where the options sit in the run config (``backend``, ``metrics.macro_f1``), so errors
    name the full key.
    """
    if isinstance(options, DictConfig):
        options = OmegaConf.to_container(options, resolve=True)
    options = {k: v for k, v in dict(options or {}).items() if k != "name"}
    parts = key.split(".")
    schema: Any = OmegaConf.structured(cls.Config)
    for part in reversed(parts):
        schema, options = OmegaConf.create({part: schema}), {part: options}
    try:
        merged = OmegaConf.merge(schema, options)
        node = OmegaConf.select(merged, key)
        return OmegaConf.to_object(node)
    except OmegaConfBaseException as exc:
        raise ConfigError(friendly(exc) or str(exc)) from exc
