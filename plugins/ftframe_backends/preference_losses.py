"""The preference losses, as the papers define them (and as TRL computes them, huggingface/trl @ f2cd577).

Inputs are per-example reply log-probabilities under the policy (and the reference, where the method has
one): summed over the reply's tokens for DPO and KTO, averaged per token for IPO, SimPO and ORPO (as TRL
and the papers' reported results do). Each function returns the mean loss and detached statistics to log.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Stats = dict[str, torch.Tensor]


def _pair_stats(chosen_reward: torch.Tensor, rejected_reward: torch.Tensor) -> Stats:
    chosen_reward, rejected_reward = chosen_reward.detach(), rejected_reward.detach()
    return {"reward_margin": (chosen_reward - rejected_reward).mean(),
            "reward_accuracy": (chosen_reward > rejected_reward).float().mean(),
            "chosen_reward": chosen_reward.mean(), "rejected_reward": rejected_reward.mean()}


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, *, beta: float, label_smoothing: float = 0.0) -> tuple[torch.Tensor, Stats]:
    """DPO (Rafailov et al. 2023, eq. 7): ``-log σ(β·((log π_c − log π_r) − (log ref_c − log ref_r)))`` on
    summed log-probabilities, with conservative-DPO label smoothing ``ε`` (the assumed share of flipped
    preferences: ``−(1−ε)·log σ(βh) − ε·log σ(−βh)``). Rewards: ``β·(log π − log ref)``."""
    logits = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    return losses.mean(), _pair_stats(beta * (policy_chosen - ref_chosen), beta * (policy_rejected - ref_rejected))


def ipo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, *, tau: float) -> tuple[torch.Tensor, Stats]:
    """IPO (Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human
    Preferences", eq. 17): ``(h − 1/(2τ))²`` with ``h = (log π_c − log π_r) − (log ref_c − log ref_r)`` on
    per-token average log-probabilities (TRL's normalisation, confirmed with the paper's authors): the
    log-ratio margin is pulled to ``1/(2τ)`` instead of pushed without bound as in DPO."""
    logits = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    losses = (logits - 1 / (2 * tau)) ** 2
    stats = _pair_stats(policy_chosen - ref_chosen, policy_rejected - ref_rejected)
    return losses.mean(), stats


def simpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, *, beta: float, gamma: float,
               label_smoothing: float = 0.0) -> tuple[torch.Tensor, Stats]:
    """SimPO (Meng et al. 2024, "SimPO: Simple Preference Optimization with a Reference-Free Reward",
    eq. 6): ``-log σ(β·(avg log π_c − avg log π_r) − γ)``: the reward is the policy's own per-token
    average log-probability (no reference model), and the chosen reply must win by the margin ``γ``."""
    logits = beta * (policy_chosen - policy_rejected) - gamma
    losses = -F.logsigmoid(logits) * (1 - label_smoothing) - F.logsigmoid(-logits) * label_smoothing
    return losses.mean(), _pair_stats(beta * policy_chosen, beta * policy_rejected)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 − exp(x))`` for ``x < 0``, stable on both sides of ``−log 2`` (Mächler 2012)."""
    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, chosen_nll: torch.Tensor, *,
              lam: float) -> tuple[torch.Tensor, Stats]:
    """ORPO (Hong et al. 2024, "ORPO: Monolithic Preference Optimization without Reference Model",
    eqs. 4-7): ``L_SFT + λ·L_OR`` with ``L_OR = −log σ(log odds(y_c) − log odds(y_r))``, ``odds(y) =
    P(y)/(1 − P(y))`` of the per-token average probability ``P(y) = exp(avg log π(y))``; ``chosen_nll`` is
    the supervised loss on the chosen replies (mean per token). No reference model."""
    log_odds = (policy_chosen - policy_rejected) - (log1mexp(policy_chosen) - log1mexp(policy_rejected))
    ratio = F.logsigmoid(log_odds)
    loss = chosen_nll - lam * ratio.mean()
    stats = _pair_stats(lam * policy_chosen, lam * policy_rejected)
    stats.update({"nll_loss": chosen_nll.detach(), "log_odds_ratio": ratio.detach().mean(),
                  "log_odds_chosen": log_odds.detach().mean()})
    return loss, stats


def kto_loss(policy: torch.Tensor, reference: torch.Tensor, desirable: torch.Tensor, kl: torch.Tensor, *,
             beta: float, desirable_weight: float = 1.0,
             undesirable_weight: float = 1.0) -> tuple[torch.Tensor, Stats]:
    """KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization", eq. 8) on
    unpaired replies: with ``r = log π(y|x) − log ref(y|x)`` (summed log-probabilities) and the reference
    point ``z = max(0, KL)`` (an estimate of ``KL(π‖ref)``, no gradient),
    ``λ_D·(1 − σ(β(r − z)))`` for a desirable reply and ``λ_U·(1 − σ(β(z − r)))`` for an undesirable
    one, averaged over the batch. ``desirable`` is a boolean per reply. Logged: ``kl`` (``z``),
    ``signed_reward`` (``β·r``, negated for undesirable replies: rises as the policy learns) and
    ``reward_accuracy`` (replies on their side of ``z``)."""
    z = kl.detach().clamp(min=0)
    rewards = policy - reference
    losses = torch.where(desirable, desirable_weight * (1 - torch.sigmoid(beta * (rewards - z))),
                         undesirable_weight * (1 - torch.sigmoid(beta * (z - rewards))))
    # Per-kind means would be undefined for a batch without one kind; these two are defined for any batch.
    sign = desirable.float() * 2 - 1
    stats = {"kl": z, "signed_reward": (sign * beta * rewards.detach()).mean(),
             "reward_accuracy": ((rewards.detach() - z) * sign > 0).float().mean()}
    return losses.mean(), stats
