"""A champion and a challenger in one ``ftframe serve`` process: loading the challenger, routing requests.

**Loading** (:func:`load_challenger`). The challenger must read requests as the same token ids as the
champion (the same tokenizer and chat template, :func:`ftframe.lifecycle.compat.check_same_tokenizer`):
the server tokenizes a request once and both models decode those ids, and the log's prompt-token counts
hold for both. Where both runs are LoRA adapters over the same base model (the same ``model`` config, held
in the same dtype), the challenger's adapter is loaded into the champion's PEFT model under the name
``challenger`` (PEFT's named adapters): one copy of the base in memory. Otherwise (merged weights, another
base with the same tokenizer) it is a model of its own.

**Routing** (:class:`Router`). ``shadow``: the champion answers every request and the challenger decodes
the same request in the background; ``canary``: a share of the requests is answered by the challenger.
A canary request with a ``user`` (or ``safety_identifier``) goes where that user's bucket falls: the first
8 bytes of SHA-256(user) as a fraction of 2**64, challenger when below the share — so one user always gets
the same variant, and raising the share only moves users from the champion to the challenger, never back.
Requests without a user are spread evenly: the k-th such request goes to the challenger when
``floor((k + 1) * share) > floor(k * share)``, so any N consecutive ones hold N x share of them, rounded
either way, and the challenger's requests are spaced out in time rather than bunched.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ftframe.lifecycle import LifecycleError

MODES = ("shadow", "canary")
CHALLENGER_ADAPTER = "challenger"
"""The PEFT adapter name the challenger's adapter gets on the champion's model."""


def check_share(share: float) -> float:
    """``share`` as a float in [0, 1]; a :class:`LifecycleError` otherwise."""
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0.0 <= float(share) <= 1.0:
        raise LifecycleError(f"--canary-share must be a number between 0 and 1 (the share of requests the "
                             f"challenger answers), got {share!r}.")
    return float(share)


def user_bucket(user: str) -> float:
    """A user's place in [0, 1): SHA-256 of the value, its first 8 bytes as a fraction of 2**64."""
    return int.from_bytes(hashlib.sha256(user.encode("utf-8")).digest()[:8], "big") / 2**64


class Router:
    """Which variant answers a request (see the module docstring). Thread-safe."""

    def __init__(self, mode: str, share: float = 0.0):
        if mode not in MODES:
            raise LifecycleError(f"routing mode {mode!r} is not one of {', '.join(MODES)}.")
        self.mode = mode
        self.share = check_share(share) if mode == "canary" else 0.0
        self._fraction = Fraction(str(self.share)).limit_denominator(10**6)
        self._count = 0
        self._lock = threading.Lock()

    def served_by(self, user: str | None) -> str:
        """``champion`` or ``challenger``: whose answer the client gets."""
        if self.mode == "shadow":
            return "champion"
        if user is not None:
            return "challenger" if user_bucket(user) < self.share else "champion"
        with self._lock:
            k = self._count
            self._count += 1
        p, q = self._fraction.numerator, self._fraction.denominator
        return "challenger" if (k + 1) * p // q > k * p // q else "champion"

    def describe(self) -> str:
        if self.mode == "shadow":
            return "shadow: the champion answers, the challenger decodes every request in the background"
        return (f"canary: {self.share:.0%} of requests answered by the challenger (sticky per user, "
                f"evenly spread without one)")


@dataclass
class LoadedChallenger:
    """The challenger as loaded beside the champion."""

    model: Any
    """The champion's own PEFT model (now holding both adapters) where they share the base, else its own."""
    run_dir: Path
    shared_base: bool
    adapter: str | None
    """The challenger's adapter name on the shared model (None for a model of its own)."""
    champion_adapter: str | None
    tokenizer_fingerprint: str
    config: Any


def _same_base(champion: Any, config: Any, manifest: dict[str, Any]) -> bool:
    from omegaconf import OmegaConf

    from ftframe.engine.saved_run import trained_dtype

    return (OmegaConf.to_container(champion.config.model, resolve=True) == OmegaConf.to_container(config.model, resolve=True)
            and trained_dtype(champion.manifest) == trained_dtype(manifest))


def load_challenger(champion: Any, spec: str, *, registry_uri: str | None = None,
                    prefer_shared: bool = True) -> LoadedChallenger:
    """Load the challenger ``spec`` (a run dir or ``models:/`` URI) beside the loaded ``champion``
    (:class:`ftframe.engine.saved_run.SavedRun`): as a second adapter on the champion's model where both are
    LoRA adapters over the same base (and ``prefer_shared``), else as a model of its own. A challenger with
    another tokenizer or chat template, or one that cannot generate text, is a :class:`LifecycleError`."""
    from ftframe.engine.saved_run import load_saved_run, read_run_dir, weights_folder
    from ftframe.engine.verify import generates_text
    from ftframe.lifecycle.compat import check_same_tokenizer
    from ftframe.lifecycle.registry import resolve_run_dir

    run_dir, config, manifest = read_run_dir(resolve_run_dir(spec, registry_uri=registry_uri))
    if run_dir.resolve() == Path(champion.run_dir).resolve():
        raise LifecycleError(f"The challenger {spec} is the champion's own run dir; name another run.")
    fingerprint = check_same_tokenizer(champion.run_dir, run_dir)
    folder = weights_folder(run_dir, manifest, "adapter")
    model = champion.model
    if (prefer_shared and champion.weights == "adapter" and folder is not None and callable(getattr(model, "load_adapter", None))
            and _same_base(champion, config, manifest) and str(config.backend.get("head", "lm")) != "classifier"):
        champion_adapter = str(model.active_adapter)
        if CHALLENGER_ADAPTER in model.peft_config:
            raise LifecycleError(f"The champion's model already holds an adapter named {CHALLENGER_ADAPTER!r}.")
        model.load_adapter(str(folder), adapter_name=CHALLENGER_ADAPTER, is_trainable=False, autocast_adapter_dtype=True)
        model.set_adapter(champion_adapter)
        model.eval()
        return LoadedChallenger(model=model, run_dir=run_dir, shared_base=True, adapter=CHALLENGER_ADAPTER,
                                champion_adapter=champion_adapter, tokenizer_fingerprint=fingerprint, config=config)
    saved = load_saved_run(run_dir)
    if not generates_text(saved.model):
        raise LifecycleError(f"The challenger {spec} has no LM head to generate text with (e.g. it was trained with "
                             f"a classification head), so it cannot answer chat requests.")
    return LoadedChallenger(model=saved.model, run_dir=run_dir, shared_base=False, adapter=None, champion_adapter=None,
                            tokenizer_fingerprint=fingerprint, config=saved.config)


def served_name(spec: str, run_dir: str | Path, *, registry_uri: str | None = None) -> str:
    """What the request log names a variant by: ``models:/NAME/VERSION`` (the version the alias pointed at
    when the server started) for a registry URI, else the run dir's absolute path."""
    from ftframe.lifecycle.registry import is_model_uri, resolve_model_uri

    if is_model_uri(spec):
        resolved = resolve_model_uri(spec, registry_uri=registry_uri)
        return f"models:/{resolved.name}/{resolved.version}"
    return str(Path(run_dir).resolve())
