"""Bounded exponential backoff with full jitter, for provider calls the SDKs do not retry themselves.

A few lines rather than a retry library: the callers must decide per failure whether a retry is safe
(a create that may have reached the server is looked up first, not repeated), which wraps more simply
around a plain delay sequence than around a decorator.
"""

from __future__ import annotations

import random
from collections.abc import Iterator


def delays(retries: int, *, base: float, cap: float = 30.0, rng: random.Random | None = None) -> Iterator[float]:
    """``retries`` delays: uniformly random in ``[0, min(cap, base * 2**n)]`` ("full jitter")."""
    rng = rng or random.Random()
    for n in range(max(0, retries)):
        yield rng.uniform(0, min(cap, base * (2 ** n)))


def retry_after(headers: object) -> float | None:
    """Seconds from a ``Retry-After`` (seconds) or ``retry-after-ms`` header, if the server sent one."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = get(name)
        if value is not None:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None
