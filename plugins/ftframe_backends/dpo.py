"""DPO: preference training from ``chosen``/``rejected`` pairs (Rafailov et al. 2023, "Direct Preference
Optimization: Your Language Model is Secretly a Reward Model").

The policy is a LoRA adapter; the reference model is the same frozen base with the adapter switched
off (peft's ``disable_adapter()``), so no second copy of the model is held. The objective (loss, pair
encoding) is in :mod:`ftframe_backends.dpo_objective`, imported when a job trains; this module (the
backend and its ``Config``) imports no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ftframe.api import Example
from ftframe.errors import ConfigError
from ftframe_backends.local import LazyClass
from ftframe_backends.lora import LoraBackend, LoraConfig


@dataclass
class DpoConfig(LoraConfig):
    """LoRA options plus ``beta``; ``label_smoothing`` is the assumed share of flipped preference labels
    (conservative DPO), not token smoothing."""

    beta: float = 0.1
    """Strength of the pull towards the reference model: higher keeps the policy closer to the base."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise ConfigError(f"backend.beta must be positive, got {self.beta}.")
        if self.label_smoothing >= 0.5:
            raise ConfigError(f"backend.label_smoothing for dpo is the share of flipped preferences and must be "
                              f"below 0.5, got {self.label_smoothing}.")


class DpoBackend(LoraBackend):
    """Direct preference optimisation of a LoRA adapter against the frozen base (no second model copy)."""

    name = "dpo"
    Config = DpoConfig
    label = "DPO"
    module_cls = LazyClass("ftframe_backends.dpo_objective:DPOModule")
    classifier_head = False

    def example_problems(self, examples: Sequence[Example]) -> list[str]:
        missing = [ex for ex in examples if not ex.is_preference]
        if not missing:
            return []
        return [(f"backend=dpo needs preference pairs (a 'chosen' and a 'rejected' reply per prompt); "
                 f"{len(missing)} of {len(examples)} training examples have none (first: {missing[0].source}). "
                 f"Use preference data (chat_jsonl with chosen/rejected, openai_dpo, sharegpt_dpo), or "
                 f"backend=lora.")]
