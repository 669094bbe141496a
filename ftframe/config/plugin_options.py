"""Plugin ``Config`` dataclasses as Hydra schemas, and validated plugin options.

Single-choice groups (``data``, ``model``, ``backend``) store a node per plugin with an extra ``name``
field naming the choice; multi-choice groups (``metrics``, ``exporters``, ``judges``) store each plugin's
options at ``<group>.<name>``, so ``metrics=[macro_f1,accuracy]`` composes with no YAML file.
"""

from __future__ import annotations

import dataclasses
import typing
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


def node_class(cls: type[Plugin], *, backend: bool = False) -> type:
    """``cls.Config`` plus a ``name`` field defaulting to the plugin's registry name.

    For a backend also: each option its ``Config`` maps from the portable ``train`` section defaults to
    ``${portable:train.<key>,<its own default>}`` (:mod:`ftframe.config.portable`), and a backend with
    ``default_exporters`` overrides the ``exporters`` group choice (a task or the command line still wins)."""
    fields: list[Any] = [("name", str, dataclasses.field(default=cls.name))]
    if backend:
        fields += _portable_fields(cls)
        if getattr(cls, "default_exporters", None) is not None:
            chosen = list(cls.default_exporters)  # type: ignore[attr-defined]
            fields.append(("defaults", list[Any], dataclasses.field(
                default_factory=lambda: [{"override /exporters@_global_.exporters": chosen}, "_self_"])))
    return dataclasses.make_dataclass(f"{cls.__name__}Options", fields, bases=(cls.Config,))


def _portable_fields(cls: type[Plugin]) -> list[Any]:
    from ftframe.config.portable import PORTABLE_KEYS, interpolation, mapping
    from ftframe.errors import PluginError

    own = {f.name: f for f in dataclasses.fields(cls.Config)}
    hints = typing.get_type_hints(cls.Config)
    out = []
    for key, option in mapping(cls.Config).items():
        if key not in PORTABLE_KEYS or option not in own:
            raise PluginError(f"backend {cls.name!r}: {cls.Config.__qualname__}.portable maps {key!r} to {option!r}; "
                              f"the keys are {', '.join(PORTABLE_KEYS)} and the values must be fields of the Config.")
        default = own[option].default
        if default is dataclasses.MISSING:
            default = own[option].default_factory()  # type: ignore[misc]
        out.append((option, hints[option], dataclasses.field(default=interpolation(key, default))))
    return out


def store_schemas(registry: Any) -> None:
    """Put the run schema and every plugin's schema into Hydra's ConfigStore (idempotent)."""
    register_resolvers()
    cs = ConfigStore.instance()
    cs.store(name="ftframe_schema", node=RunSchema)
    cs.store(group="data", name=AUTO, node=AutoDataConfig)
    for kind, group in SINGLE_CHOICE.items():
        for name, cls in registry.classes[kind].items():
            cs.store(group=group, name=name, node=node_class(cls, backend=kind == "backend"))
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
