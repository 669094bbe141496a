"""Config problems of ``transforms``, ``split.files`` and ``data_checks`` (collected by ``ftframe validate``)."""

from __future__ import annotations

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
        if t.get("sample") is not None and t.sample < 1:
            out.append(f"transforms.sample must be at least 1 (or null: every example), got {t.sample}.")
    return out  # split.files paths: ftframe.preflight.input_paths.config_input_problems
