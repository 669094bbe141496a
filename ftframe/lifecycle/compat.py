"""Whether two runs can share one base model: the same tokenizer and chat template.

A challenger whose tokenizer (vocabulary, merges, special tokens) or chat template differs from the
champion's would read the same request as other token ids, so the two cannot be served as two adapters
over one base, and prompt-token counts from one do not apply to the other. The fingerprint is computed
from the files the exporters save beside the weights (``adapter/`` or ``merged/``), without loading
anything.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ftframe.lifecycle import LifecycleError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "special_tokens_map.json")


def _weights_dir(run_dir: Path) -> Path | None:
    from ftframe.engine.saved_run import weights_folder

    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    return next((f for k in ("adapter", "merged") if (f := weights_folder(run_dir, manifest, k)) is not None), None)


def tokenizer_fingerprint(run_dir: str | Path) -> str | None:
    """SHA-256 (first 16 hex) over the tokenizer files and the chat template saved with the run's weights;
    None when the run saved no tokenizer there."""
    folder = _weights_dir(Path(run_dir))
    if folder is None:
        return None
    h = hashlib.sha256()
    found = False
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            h.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
            found = True
    template = ""
    if (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    elif (folder / "tokenizer_config.json").is_file():
        template = str(json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template") or "")
    h.update(b"template\0" + template.encode("utf-8"))
    return h.hexdigest()[:16] if found else None


def check_same_tokenizer(champion: str | Path, challenger: str | Path) -> str:
    """The shared fingerprint; a :class:`LifecycleError` naming both runs when they differ or one is unknown."""
    a, b = tokenizer_fingerprint(champion), tokenizer_fingerprint(challenger)
    if a is None or b is None:
        missing = champion if a is None else challenger
        raise LifecycleError(f"{missing}: no tokenizer saved with its weights, so it cannot be checked against the "
                             f"other run's; re-export it (the adapter and merged exporters save the tokenizer).")
    if a != b:
        raise LifecycleError(f"The challenger {challenger} uses another tokenizer or chat template than the champion "
                             f"{champion} (fingerprints {b} and {a}): the two cannot share one base model. Serve the "
                             f"challenger as a model of its own, or train it on the champion's base.")
    return a
