"""API keys: read only from the environment (or a file an environment variable names), never from config.

Hydra writes the composed config and the command line into the run dir, so a key given there would land
on disk; :func:`refuse_config_key` turns that into a config error before anything is written.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ftframe.errors import ConfigError, FtframeError


class MissingKey(FtframeError):
    """No API key in the environment."""


def refuse_config_key(value: str | None, env: str) -> None:
    """Raise a :class:`ConfigError` when a key was put in the config (the value is never echoed)."""
    if value:
        raise ConfigError(
            f"backend.api_key: API keys are not accepted in the config or on the command line, because Hydra "
            f"writes both into the run dir (config.yaml, .hydra/, the manifest and model card). Remove it and "
            f"set the environment variable {env} (or {env}_FILE naming a file that holds the key).")


@dataclass(frozen=True)
class ApiKey:
    """A resolved key and where it came from (``source`` names the variable, never the value)."""

    value: str
    source: str

    def __repr__(self) -> str:  # a key must not leak through a repr in a traceback or log line
        return f"ApiKey(source={self.source!r})"

    def scrub(self, text: str) -> str:
        """``text`` with the key, and any masked echo of it (``sk-ab***yz``), replaced by ``[redacted]``."""
        out = text.replace(self.value, "[redacted]")
        prefix = re.escape(self.value[:3])
        return re.sub(prefix + r"\S*\*\S*", "[redacted]", out)


def resolve_key(env: str) -> ApiKey:
    """The key from ``$env``, else from the file named by ``$env_FILE``; a clear error when neither is set."""
    value = os.environ.get(env, "").strip()
    if value:
        return ApiKey(value, f"${env}")
    file_var = f"{env}_FILE"
    path = os.environ.get(file_var, "").strip()
    if path:
        try:
            value = Path(path).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise MissingKey(f"${file_var} names {path}, which cannot be read ({exc.strerror}); point it at a "
                             f"readable file holding only the API key.") from None
        if not value:
            raise MissingKey(f"${file_var} names {path}, which is empty; put the API key in it.")
        return ApiKey(value, f"${file_var}")
    raise MissingKey(f"No API key: set the environment variable {env} (or {file_var} naming a file that holds "
                     f"the key). Keys are never read from the config, which Hydra writes to disk.")
