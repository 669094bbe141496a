"""The portable ``train`` section, and how each backend maps it to its own options.

A backend's ``Config`` declares ``portable: ClassVar[dict[str, str]]`` (portable key -> its own option, e.g.
``{"epochs": "n_epochs"}``) and ``no_equivalent: ClassVar[dict[str, str]]`` (portable key -> why it has none
and what comes closest). The ConfigStore node of the backend then defaults each mapped option to
``${portable:train.<key>,<the option's own default>}``: the portable value when it is set, else the
backend's default. Setting the option itself (``backend.epochs=3``) replaces the interpolation, so the
backend's own key still works and wins over the portable one.

Which values were given on the command line matters (docs/training.md, "Portable hyperparameters"): a
portable value the chosen backend cannot honour is an error when the user gave it, and is only reported
as not applied when a task file set it (the task was written for any backend).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ftframe.config.schema import TrainConfig

RESOLVER = "portable"
PORTABLE_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))


def mapping(config_cls: type) -> dict[str, str]:
    """Portable key -> the backend option it sets, as ``config_cls`` declares (``portable``)."""
    return dict(getattr(config_cls, "portable", None) or {})


def no_equivalent(config_cls: type) -> dict[str, str]:
    """Portable key -> why the backend has no equivalent (``no_equivalent``)."""
    return dict(getattr(config_cls, "no_equivalent", None) or {})


def interpolation(key: str, default: Any) -> str:
    """``${portable:train.<key>,<default>}``: the portable value, or ``default`` when it is null."""
    literal = "null" if default is None else str(default).lower() if isinstance(default, bool) else repr(default)
    return f"${{{RESOLVER}:train.{key},{literal}}}"


def resolve(key: str, default: Any, *, _root_: Any) -> Any:
    """The resolver behind :func:`interpolation` (OmegaConf's ``oc.select`` keeps a null, this falls back)."""
    value = OmegaConf.select(_root_, key, default=None)
    return default if value is None else value


def explicit_keys(overrides: Iterable[str]) -> set[str]:
    """The portable keys the command line sets: ``train.lr=1e-3``, ``+train.lr=...``, ``train={lr: 1e-3}``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out: set[str] = set()
    try:
        parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    except Exception:  # noqa: BLE001 - an unparsable override is reported by composition, not here
        return out
    for o in parsed:
        key = o.key_or_group
        if key == "train":
            value = o.value()
            out |= {str(k) for k in value} if isinstance(value, dict) else set(PORTABLE_KEYS)
        elif key.startswith("train."):
            out.add(key.split(".")[1])
    return out & set(PORTABLE_KEYS)


def _set(cfg: DictConfig) -> dict[str, Any]:
    train = cfg.get("train") or {}
    return {k: train.get(k) for k in PORTABLE_KEYS if train.get(k) is not None}


def problems(cfg: DictConfig, name: str, config_cls: type, explicit: set[str]) -> list[str]:
    """What in ``train`` the chosen backend ``name`` cannot honour, for the keys given on the command line:
    a key it has no equivalent for (with the closest option), or one its own option overrides."""
    out = []
    own = mapping(config_cls)
    node = cfg.get("backend")
    for key, value in _set(cfg).items():
        if key not in explicit:
            continue
        if key not in own:
            why = no_equivalent(config_cls).get(key) or "its options have none"
            out.append(f"train.{key}={value}: backend={name} has no equivalent: {why}.")
        elif node is not None and own[key] in node and not OmegaConf.is_interpolation(node, own[key]):
            out.append(f"train.{key}={value} does not apply: backend.{own[key]}={node.get(own[key])} is set too (by "
                       f"the task or the command line) and wins; set only one of them.")
    return out


def not_applied(cfg: DictConfig, config_cls: type) -> dict[str, str]:
    """Portable values set (by a task) that the backend has no equivalent for: key -> why. The run reports
    them; they are no error, since the task was written for any backend."""
    own, why = mapping(config_cls), no_equivalent(config_cls)
    return {f"train.{k}={v}": why.get(k, "no equivalent") for k, v in _set(cfg).items() if k not in own}


def name_portable_sources(messages: Sequence[str], cfg: DictConfig, config_cls: type) -> list[str]:
    """``backend.n_epochs must be ...`` -> ``train.epochs (backend.n_epochs) must be ...`` where the value came
    from the portable key, so a bad ``train.epochs=0`` names the key the user wrote."""
    node = cfg.get("backend")
    sources = {option: key for key, option in mapping(config_cls).items()
               if node is not None and option in node and OmegaConf.is_interpolation(node, option)
               and _set(cfg).get(key) is not None}
    out = []
    for msg in messages:
        for option, key in sources.items():
            msg = msg.replace(f"backend.{option} ", f"train.{key} (backend.{option}) ")
        out.append(msg)
    return out
