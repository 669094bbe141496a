"""Turn Hydra/OmegaConf exceptions into one friendly line: the full key, the problem, a suggestion."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from typing import Any

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)


def did_you_mean(word: str, choices: Iterable[str], synonyms: dict[str, str] | None = None) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string.

    ``synonyms`` maps other names of a choice to it (a plugin ``Config``'s ``synonyms``, e.g. ``rank`` ->
    ``r``): when no choice is close, a close synonym suggests its choice."""
    choices = list(choices)
    known = {k: v for k, v in (synonyms or {}).items() if v in choices}
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6) if word not in known else []
    if close:
        return f" (did you mean {close[0]!r}?)"
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {known[close[0]]!r}? {close[0]!r} is called {known[close[0]]!r} here)" if close else ""


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def _keys_of(exc: OmegaConfBaseException) -> list[str]:
    node = getattr(exc, "parent_node", None)
    try:
        return [str(k) for k in node.keys()] if node is not None else []  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - a list/value node has no keys
        return []


def _portable_hint(key: str, object_type: Any) -> str:
    """For an unknown backend option that is a portable key or another backend's name for one: the portable
    key that sets it here, or why this backend has no equivalent (``ftframe.config.portable``)."""
    from ftframe.config.portable import PORTABLE_KEYS, mapping, no_equivalent

    if object_type is None:
        return ""
    own = mapping(object_type)
    option = (getattr(object_type, "synonyms", None) or {}).get(key)
    portable = key if key in PORTABLE_KEYS else next((k for k, o in own.items() if o == option), None)
    if portable is None:
        return ""
    if portable in own:
        return f" The portable train.{portable} sets it for every backend."
    why = no_equivalent(object_type).get(portable)
    return f" This backend has no equivalent of train.{portable}: {why}." if why else ""


def friendly(exc: BaseException, options_for: Callable[[str], list[str]] | None = None,
             owners: Callable[[str], list[str]] | None = None) -> str | None:
    """A one-paragraph explanation of a config error, or None when ``exc`` is not one.

    ``options_for(group)`` lists a config group's options, for "did you mean" on unknown choices;
    ``owners(full_key)`` names the plugins whose options include an unknown key (``backend.last_layers``:
    lora, qlora, dpo), so a key of another backend says where it belongs.
    """
    for err in _chain(exc):
        if isinstance(err, MissingConfigException):
            return _missing_option(err, options_for)
        if isinstance(err, MissingMandatoryValue):
            key = getattr(err, "full_key", "") or "?"
            return f"Missing value for '{key}': set it on the command line ({key}=...) or in the task config."
        if isinstance(err, (ConfigKeyError, ConfigAttributeError)):
            full_key = getattr(err, "full_key", "") or ""
            key = getattr(err, "key", None) or full_key.rsplit(".", 1)[-1]
            keys = _keys_of(err)
            object_type = getattr(err, "object_type", None)
            hint = did_you_mean(str(key), keys, getattr(object_type, "synonyms", None))
            keys = [k for k in keys if k != "hydra"]
            elsewhere = owners(full_key or str(key)) if owners is not None else []
            extra = _portable_hint(str(key), object_type) if full_key.startswith("backend.") else ""
            if elsewhere and " sets it for every backend" not in extra:
                extra += (f" '{key}' is an option of backend {', '.join(elsewhere)} only: give it with those "
                          f"(a task's options for one backend go in conf/task_backend/<task>/<backend>.yaml).")
            valid = f" Valid keys here: {', '.join(sorted(keys))}." if keys and not hint and not extra else ""
            if not keys and "." in full_key:
                parent = full_key.rsplit(".", 1)[0]
                # an empty mapping (a plugin's free-form dict option, e.g. judge_options): Hydra only adds keys
                # it does not know yet with a leading +, which no error of its own says
                valid = (f" '{parent}' is empty: add a key to it with a leading +, "
                         f"'+{full_key}=...' or '+{parent}={{...}}'.")
            return f"Unknown config key '{full_key or key}'{hint}.{extra}{valid}"
        if isinstance(err, ValidationError):
            key = getattr(err, "full_key", "") or "?"
            msg = str(err).splitlines()[0]
            return f"Wrong type for '{key}': {msg}."
        if isinstance(err, OverrideParseException):
            return f"Could not parse the override: {str(err).splitlines()[0]}"
    for err in _chain(exc):
        if isinstance(err, ConfigCompositionException):
            return str(err).strip()
    return None


def _missing_option(err: MissingConfigException, options_for: Callable[[str], list[str]] | None) -> str:
    text = str(err)
    m = re.search(r"Could not (?:find|load) '([^']+)'", text)
    wanted = m.group(1) if m else "?"
    group, _, option = wanted.rpartition("/")
    options = list(getattr(err, "options", None) or [])
    if not options and group and options_for is not None:
        options = options_for(group)
    if group:
        return (f"Unknown option '{option}' for config group '{group}'{did_you_mean(option, options)}. "
                f"Available: {', '.join(options) or '(none)'}.")
    return f"Config '{wanted}' not found{did_you_mean(wanted, options)}."
