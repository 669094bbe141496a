"""Exact duplicates inside a dataset, and train/test leakage (exact and near-duplicate prompts).

"Near" means equal after normalisation: Unicode NFKC, case-folded, every run of non-alphanumeric
characters turned into one space. That catches copies that differ in case, punctuation or spacing,
without the false positives of fuzzy similarity on short texts such as intent utterances.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ftframe.api import Example

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def record_key(ex: Example) -> str:
    """The whole example (prompt and replies) as canonical JSON: equal keys are exact duplicates."""
    return json.dumps(ex.to_record(), sort_keys=True, ensure_ascii=False)


def prompt_key(ex: Example) -> str:
    return json.dumps(ex.prompt, sort_keys=True, ensure_ascii=False)


def prompt_text(ex: Example) -> str:
    """The text a model is asked about: every non-assistant message of the prompt."""
    return normalise(" ".join(str(m.get("content") or "") for m in ex.prompt if m.get("role") != "assistant"))


def duplicate_groups(examples: Sequence[Example]) -> list[list[str]]:
    """Sources of examples that are exact copies of one another (groups of two or more), in file order."""
    groups: dict[str, list[str]] = defaultdict(list)
    for ex in examples:
        groups[record_key(ex)].append(ex.source)
    return [g for g in groups.values() if len(g) > 1]


def leakage(train: Sequence[Example], held_out: Sequence[Example]) -> dict[str, list[dict[str, Any]]]:
    """Held-out examples whose prompt also occurs in training: ``exact`` (identical messages) and ``near``
    (identical after :func:`normalise`, not exact), each ``{"held_out": source, "train": source}``."""
    exact = {prompt_key(ex): ex.source for ex in train}
    near = {}
    for ex in train:
        near.setdefault(prompt_text(ex), ex.source)
    out: dict[str, list[dict[str, Any]]] = {"exact": [], "near": []}
    for ex in held_out:
        if (src := exact.get(prompt_key(ex))) is not None:
            out["exact"].append({"held_out": ex.source, "train": src})
        elif (text := prompt_text(ex)) and (src := near.get(text)) is not None:
            out["near"].append({"held_out": ex.source, "train": src})
    return out
