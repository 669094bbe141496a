"""Config problems of ``transforms``, ``split.files`` and ``data_checks`` (collected by ``ftframe validate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftframe.config.errors import did_you_mean
from ftframe.transforms.long_examples import POLICIES
from ftframe.transforms.pii import KINDS


def problems(cfg: Any) -> list[str]:
    out: list[str] = []
    t = cfg.get("transforms")
    if t is not None:
        if t.too_long not in POLICIES:
            out.append(f"transforms.too_long: {t.too_long!r} is not one of {', '.join(POLICIES)}"
                       f"{did_you_mean(str(t.too_long), POLICIES)}.")
        for kind in t.redact_pii or []:
            if kind not in (*KINDS, "all"):
                out.append(f"transforms.redact_pii: unknown kind {kind!r}{did_you_mean(str(kind), KINDS)} "
                           f"(one of {', '.join(KINDS)}, or all).")
        if t.chunk_overlap < 0:
            out.append(f"transforms.chunk_overlap must be 0 or more, got {t.chunk_overlap}.")
    files = (cfg.get("split") or {}).get("files") or {}
    for name, path in files.items():
        if path and not Path(str(path)).exists():
            out.append(f"split.files.{name}: file not found: {path} (relative paths are taken from {Path.cwd()}).")
    return out
