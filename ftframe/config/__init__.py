"""Config schemas, composition, friendly errors and cross-field validation."""

from __future__ import annotations

from collections.abc import Sequence

from ftframe.config.errors import did_you_mean
from ftframe.errors import ConfigError


def one_of(key: str, value: object, allowed: Sequence[str]) -> None:
    """Raise a :class:`ConfigError` naming ``key`` unless ``value`` is one of ``allowed``.

    For plugin ``Config.__post_init__`` checks of string choices.
    """
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}{did_you_mean(str(value), allowed)}.")
