"""Preference training of a LoRA adapter: ``dpo``, ``ipo``, ``simpo`` and ``orpo`` on ``chosen``/``rejected``
pairs, ``kto`` on replies labelled desirable/undesirable.

Each backend is the ``lora`` backend with its own objective (:mod:`ftframe_backends.preference_objectives`,
imported when a job trains; this module, the backends and their ``Config``, imports no torch) and its
own options. Where a method has a reference model (DPO, IPO, KTO) it is the same frozen base with the
adapter switched off, so no second copy of the model is held; SimPO and ORPO have none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ftframe.api import Example
from ftframe.errors import ConfigError
from ftframe_backends.local import LazyClass
from ftframe_backends.lora import LoraBackend, LoraConfig

OBJECTIVES = "ftframe_backends.preference_objectives"


def _positive(name: str, value: float, key: str) -> None:
    if value <= 0:
        raise ConfigError(f"backend.{key} for {name} must be positive, got {value}.")


def _flip_share(name: str, value: float) -> None:
    """dpo and simpo read ``label_smoothing`` as the assumed share of flipped preference labels."""
    if value >= 0.5:
        raise ConfigError(f"backend.label_smoothing for {name} is the share of flipped preferences and must be "
                          f"below 0.5, got {value}.")


def _no_label_smoothing(name: str, value: float) -> None:
    if value:
        raise ConfigError(f"backend.label_smoothing has no meaning for {name} (it is the assumed share of flipped "
                          f"preferences for dpo and simpo); leave it at 0.")


@dataclass
class DpoConfig(LoraConfig):
    """LoRA options plus ``beta``; ``label_smoothing`` is the assumed share of flipped preference labels
    (conservative DPO), not token smoothing."""

    beta: float = 0.1
    """Strength of the pull towards the reference model: higher keeps the policy closer to the base."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("dpo", self.beta, "beta")
        _flip_share("dpo", self.label_smoothing)


@dataclass
class IpoConfig(LoraConfig):
    """LoRA options plus ``beta`` (the paper's τ)."""

    beta: float = 0.1
    """IPO's τ: the policy's log-ratio margin (per token, against the reference) is pulled to 1/(2τ), so a
    smaller value asks for a larger margin."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("ipo", self.beta, "beta")
        _no_label_smoothing("ipo", self.label_smoothing)


@dataclass
class SimpoConfig(LoraConfig):
    """LoRA options plus ``beta`` and ``gamma`` (SimPO's reward scale and target margin; the paper's
    settings are beta 2.0-2.5 with gamma/beta about 0.5); ``label_smoothing`` as for dpo."""

    beta: float = 2.0
    """Scale of the reward, the per-token average log-probability of a reply."""
    gamma: float = 1.0
    """Target reward margin: the chosen reply must beat the rejected one by this much."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("simpo", self.beta, "beta")
        if self.gamma < 0:
            raise ConfigError(f"backend.gamma for simpo must not be negative, got {self.gamma}.")
        _flip_share("simpo", self.label_smoothing)


@dataclass
class OrpoConfig(LoraConfig):
    """LoRA options plus ``beta`` (ORPO's λ)."""

    beta: float = 0.1
    """ORPO's λ: the weight of the odds-ratio term next to the supervised loss on the chosen replies."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("orpo", self.beta, "beta")
        _no_label_smoothing("orpo", self.label_smoothing)


@dataclass
class KtoConfig(LoraConfig):
    """LoRA options plus ``beta`` and the weights of desirable and undesirable replies."""

    beta: float = 0.1
    """Strength of the pull towards the reference model, as in DPO."""
    desirable_weight: float = 1.0
    """λ_D, the loss weight of desirable replies. With unequal counts, choose the weights so that
    desirable_weight x desirable count / (undesirable_weight x undesirable count) is between 1 and 4/3
    (the paper's advice)."""
    undesirable_weight: float = 1.0
    """λ_U, the loss weight of undesirable replies."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("beta", "desirable_weight", "undesirable_weight"):
            _positive("kto", getattr(self, key), key)
        _no_label_smoothing("kto", self.label_smoothing)


class PairedPreferenceBackend(LoraBackend):
    """A LoRA adapter trained on preference pairs by the objective ``module_cls``."""

    classifier_head = False

    def example_problems(self, examples: Sequence[Example]) -> list[str]:
        missing = [ex for ex in examples if not ex.is_preference]
        if not missing:
            return []
        kto = " (these are KTO examples with a desirable/undesirable label: use backend=kto)" if all(
            ex.is_labelled for ex in missing) else ""
        return [(f"backend={self.name} needs preference pairs (a 'chosen' and a 'rejected' reply per prompt); "
                 f"{len(missing)} of {len(examples)} training examples have none (first: {missing[0].source}){kto}. "
                 f"Use preference data (chat_jsonl with chosen/rejected, openai_dpo, sharegpt_dpo), or "
                 f"backend=lora.")]


class DpoBackend(PairedPreferenceBackend):
    """Direct preference optimisation (Rafailov et al. 2023) of a LoRA adapter against the frozen base."""

    name = "dpo"
    Config = DpoConfig
    label = "DPO"
    module_cls = LazyClass(f"{OBJECTIVES}:DPOModule")


class IpoBackend(PairedPreferenceBackend):
    """Identity preference optimisation (Azar et al. 2023): DPO's pairs, a squared loss that pulls the
    log-ratio margin to 1/(2·beta) instead of pushing it without bound."""

    name = "ipo"
    Config = IpoConfig
    label = "IPO"
    module_cls = LazyClass(f"{OBJECTIVES}:IPOModule")


class SimpoBackend(PairedPreferenceBackend):
    """SimPO (Meng et al. 2024): reference-free, length-normalised rewards with a target margin."""

    name = "simpo"
    Config = SimpoConfig
    label = "SimPO"
    module_cls = LazyClass(f"{OBJECTIVES}:SimPOModule")


class OrpoBackend(PairedPreferenceBackend):
    """ORPO (Hong et al. 2024): supervised loss on the chosen reply plus an odds-ratio penalty on the
    rejected one, in one stage and without a reference model."""

    name = "orpo"
    Config = OrpoConfig
    label = "ORPO"
    module_cls = LazyClass(f"{OBJECTIVES}:ORPOModule")


class KtoBackend(LoraBackend):
    """KTO (Ethayarajh et al. 2024) of a LoRA adapter on unpaired replies labelled desirable or undesirable."""

    name = "kto"
    Config = KtoConfig
    label = "KTO"
    module_cls = LazyClass(f"{OBJECTIVES}:KTOModule")
    classifier_head = False

    def example_problems(self, examples: Sequence[Example]) -> list[str]:
        missing = [ex for ex in examples if not ex.is_labelled]
        if not missing:
            return []
        pairs = " (these are preference pairs: use backend=dpo, or another paired method)" if all(
            ex.is_preference for ex in missing) else ""
        return [(f"backend=kto needs every training reply labelled desirable or undesirable ('label': true or "
                 f"false, as in LLaMA-Factory's KTO data); {len(missing)} of {len(examples)} training examples have "
                 f"no label (first: {missing[0].source}){pairs}.")]
