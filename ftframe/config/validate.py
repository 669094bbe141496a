"""Cross-field checks on a composed config: collect every problem, then raise once (like `tune validate`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

from ftframe.config.errors import did_you_mean
from ftframe.config.plugin_options import MULTI_CHOICE, SINGLE_CHOICE
from ftframe.config.schema import EVAL_PRECISIONS
from ftframe.engine.data_source import AUTO
from ftframe.engine.evaluate import MODES
from ftframe.errors import ConfigError, FtframeError
from ftframe.preflight.input_paths import config_input_problems
from ftframe.transforms.checks import problems as transform_problems

TASK_TYPES = ("classification", "generation")


def problems(cfg: DictConfig, registry: Any, overrides: Sequence[str] | None = None) -> list[str]:
    """Every problem found in ``cfg`` (empty when it is valid). Loads no weights and no data.

    ``overrides`` are the command line's (default: the running Hydra job's, if any): a portable ``train``
    value the backend cannot honour is an error only when given there (:mod:`ftframe.config.portable`)."""
    out: list[str] = []
    for kind, group in SINGLE_CHOICE.items():
        node = cfg.get(group)
        if node is None or node.get("name") is None:
            out.append(f"'{group}' is not set: choose one with {group}=<name> "
                       f"(available: {', '.join(registry.names(kind)) or 'none'}).")
            continue
        if group == "data" and node.name == AUTO:
            continue  # detected and checked with the other input paths below
        _check_plugin(out, registry, kind, str(node.name), node, group, cfg if group == "backend" else None)
    for kind, group in MULTI_CHOICE.items():
        for name, opts in (cfg.get(group) or {}).items():
            _check_plugin(out, registry, kind, str(name), opts, f"{group}.{name}")
    out += config_input_problems(cfg, registry)  # data, split files, golden set, model folder: as the run reads them
    golden = cfg.eval.get("golden")
    test_file = (cfg.split.get("files") or {}).get("test")
    if cfg.split.test == 0 and not golden and not test_file:
        out.append("split.test is 0 but there is no test file and no golden set: set split.files.test=FILE "
                   "or eval.golden=FILE, or give the test split a share.")
    if cfg.task.type not in TASK_TYPES:
        out.append(f"task.type: {cfg.task.type!r} is not one of {', '.join(TASK_TYPES)}"
                   f"{did_you_mean(str(cfg.task.type), TASK_TYPES)}.")
    for key in ("mode", "val_mode"):
        if cfg.eval[key] not in MODES and not (key == "val_mode" and cfg.eval[key] is None):
            out.append(f"eval.{key}: {cfg.eval[key]!r} is not one of {', '.join(MODES)}.")
    if cfg.eval.precision not in EVAL_PRECISIONS:
        out.append(f"eval.precision: {cfg.eval.precision!r} is not one of {', '.join(EVAL_PRECISIONS)}.")
    if cfg.eval.mode in ("score", "both") and cfg.task.type != "classification":
        out.append("eval.mode=score needs a classification task (a label set to score).")
    out += response_format_problems(cfg)
    metric_names = set(cfg.metrics or {})
    if cfg.task.primary_metric not in metric_names:
        out.append(f"task.primary_metric: {cfg.task.primary_metric!r} is not among the configured metrics "
                   f"({', '.join(sorted(metric_names)) or 'none'}); add it with metrics=[...].")
    for name in cfg.gate or {}:
        if name not in metric_names:
            out.append(f"gate.{name}: no metric {name!r} is configured{did_you_mean(str(name), metric_names)}.")
    shares = [cfg.split.train, cfg.split.val, cfg.split.test]
    if any(s < 0 or s > 1 for s in shares) or abs(sum(shares) - 1) > 1e-6:
        out.append(f"split: train + val + test must be 1 with each in [0, 1]; got {shares}.")
    out += transform_problems(cfg)
    out += backend_problems(cfg, registry, _command_line() if overrides is None else overrides)
    out += exporter_problems(cfg, registry)
    return out


def _command_line() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def backend_problems(cfg: DictConfig, registry: Any, overrides: Sequence[str] = ()) -> list[str]:
    """What the chosen backend refuses in the whole config (:meth:`ftframe.api.Backend.config_problems`), and
    portable ``train`` values given in ``overrides`` that it has no equivalent for or that its own option
    overrides (:func:`ftframe.config.portable.problems`)."""
    from ftframe.config import portable

    name = (cfg.get("backend") or {}).get("name")
    cls = registry.classes["backend"].get(str(name)) if name is not None else None
    if cls is None:
        return []
    out = portable.problems(cfg, str(name), cls.Config, portable.explicit_keys(overrides))
    return out + [str(p) for p in cls.config_problems(cfg)]


def response_format_problems(cfg: DictConfig) -> list[str]:
    """``task.output_schema`` is a JSON schema, and ``eval.response_format`` / ``json_whitespace`` are known
    and have the schema they need."""
    from omegaconf import OmegaConf

    from ftframe.engine.constrain import JSON_WHITESPACE, RESPONSE_FORMATS, check_schema, extractive_problems

    out = []
    kind = cfg.eval.get("response_format", "auto")
    if kind not in ("auto", *RESPONSE_FORMATS):
        out.append(f"eval.response_format: {kind!r} is not one of auto, {', '.join(RESPONSE_FORMATS)}"
                   f"{did_you_mean(str(kind), ('auto', *RESPONSE_FORMATS))}.")
    if cfg.eval.get("json_whitespace", "compact") not in JSON_WHITESPACE:
        out.append(f"eval.json_whitespace: {cfg.eval.json_whitespace!r} is not one of {', '.join(JSON_WHITESPACE)}.")
    schema = cfg.task.get("output_schema")
    if schema is not None:
        schema = OmegaConf.to_container(schema, resolve=True) if OmegaConf.is_config(schema) else schema
        try:
            check_schema(schema, "task.output_schema")
        except ConfigError as exc:
            out.extend(exc.problems)
    elif kind == "json_schema":
        out.append("eval.response_format=json_schema decodes under the task's JSON schema, but task.output_schema "
                   "is not set: give the schema there, or use eval.response_format=json_object or text.")
    fields = cfg.eval.get("extractive") or []
    if fields:
        if not isinstance(fields, Sequence) or isinstance(fields, str):
            return [*out, f"eval.extractive must be a list of property names, got {fields!r}."]
        out += extractive_problems(schema if isinstance(schema, dict) else None, [str(f) for f in fields])
        if kind in ("text", "json_object"):
            out.append(f"eval.extractive copies values into the task's JSON schema, but eval.response_format={kind}: "
                       f"use json_schema (or auto), or set eval.extractive=[].")
        if cfg.eval.get("json_whitespace", "compact") != "compact":
            out.append("eval.extractive lays the JSON out compactly: set eval.json_whitespace=compact.")
    return out


def exporter_problems(cfg: DictConfig, registry: Any) -> list[str]:
    """Exporters that cannot handle what the configured backend produces (e.g. ``adapter`` after ``full``,
    or a classification head for ``gguf``: :meth:`ftframe.api.Exporter.config_problems`). Also checked by
    ``ftframe export`` on a run's saved config with the exporters given there."""
    backend = (cfg.get("backend") or {}).get("name")
    if backend is None or backend not in registry.classes["backend"]:
        return []
    kind = registry.get("backend", str(backend)).kind
    out = []
    for name in cfg.get("exporters") or {}:
        cls = registry.classes["exporter"].get(str(name))
        if cls is not None and cls.accepts is not None and kind not in cls.accepts:
            usable = [n for n, c in sorted(registry.classes["exporter"].items()) if c.accepts is None or kind in c.accepts]
            out.append(f"exporters.{name}: backend {backend!r} produces a {kind!r} model, which {name!r} cannot "
                       f"export (it takes {', '.join(sorted(cls.accepts))}). Use exporters=[{','.join(usable)}].")
        elif cls is not None:
            out += [f"exporters.{name}: {problem}" for problem in cls.config_problems(cfg)]
    return out


def _check_plugin(out: list[str], registry: Any, kind: str, name: str, opts: Any, key: str,
                  root: DictConfig | None = None) -> None:
    if name not in registry.classes[kind]:
        out.append(f"{key}: no {kind.replace('_', ' ')} named {name!r}{did_you_mean(name, registry.names(kind))}"
                   f" (available: {', '.join(registry.names(kind)) or 'none'}).")
        return
    from ftframe.config.plugin_options import build_config

    cls = registry.get(kind, name)
    try:
        build_config(cls, opts, key=key.split(".")[0] if kind in SINGLE_CHOICE else key)
    except FtframeError as exc:
        found = getattr(exc, "problems", [str(exc)])
        if root is not None:  # a backend: a bad value from train.* names the key the user wrote
            from ftframe.config.portable import name_portable_sources

            found = name_portable_sources(found, root, cls.Config)
        out.extend(found)


def validate(cfg: DictConfig, registry: Any) -> None:
    found = problems(cfg, registry)
    if found:
        raise ConfigError(found)
