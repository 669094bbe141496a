"""OmegaConf resolvers available in every config."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from omegaconf import OmegaConf

from ftframe.errors import ConfigError


def package_file(package: str, relative: str) -> str:
    """``${package_file:pkg,sub/path}``: a file shipped inside an installed package (e.g. a plugin's data)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"${{package_file:{package},{relative}}}: package {package!r} is not installed.")
    return str(Path(next(iter(spec.submodule_search_locations))) / relative)


def register_resolvers() -> None:
    from ftframe.config.portable import RESOLVER, resolve

    OmegaConf.register_new_resolver("package_file", package_file, replace=True)
    OmegaConf.register_new_resolver(RESOLVER, resolve, replace=True)  # ${portable:train.epochs,3}
