"""The DPO objective (``backend=dpo``): pairs encoded together, the sigmoid loss, the LightningModule.

The loss follows TRL's ``DPOTrainer.dpo_loss`` (huggingface/trl, ``trl/trainer/dpo_trainer.py``,
``loss_type="sigmoid"``) with its conservative-DPO label smoothing; written here as a LightningModule so
it runs on our engine (checkpoints, resume, Lightning strategies) instead of a second trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ftframe.api import Example, Message
from ftframe.engine import CausalLMModule, sequence_logprobs
from ftframe.engine.chat import Encoded, encode
from ftframe.engine.data import collate
from ftframe.errors import DataError


@dataclass
class PairEncoded:
    chosen: Encoded
    rejected: Encoded

    @property
    def truncated(self) -> bool:
        return self.chosen.truncated or self.rejected.truncated


class PairDataset(torch.utils.data.Dataset):
    def __init__(self, items: Sequence[PairEncoded]):
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> PairEncoded:
        return self.items[i]

    @property
    def lengths(self) -> list[int]:
        return [max(len(x.chosen.input_ids), len(x.rejected.input_ids)) for x in self.items]


def _reply(ex: Example, key: str) -> Message:
    msg = getattr(ex, key)
    if not isinstance(msg, dict) or msg.get("role", "assistant") != "assistant" or not isinstance(msg.get("content"), str):
        raise DataError(f"{ex.source or 'an example'}: backend=dpo needs preference pairs, each with a "
                        f"'{key}' assistant message ({{\"role\": \"assistant\", \"content\": ...}}); got {msg!r}. "
                        f"Use preference data (chat_jsonl with chosen/rejected, or a DPO format).")
    return {"role": "assistant", "content": msg["content"]}


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, *, beta: float, label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean sigmoid DPO loss over pairs (inputs: summed reply log-probabilities, ``[pairs]``) and the
    implicit rewards ``beta * (log pi - log ref)``: their margin and how often chosen beats rejected."""
    logits = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    chosen_reward = beta * (policy_chosen - ref_chosen).detach()
    rejected_reward = beta * (policy_rejected - ref_rejected).detach()
    stats = {"reward_margin": (chosen_reward - rejected_reward).mean(),
             "reward_accuracy": (chosen_reward > rejected_reward).float().mean(),
             "chosen_reward": chosen_reward.mean(), "rejected_reward": rejected_reward.mean()}
    return losses.mean(), stats


class DPOModule(CausalLMModule):
    """The DPO objective: one forward pass of chosen and rejected together through the policy, one
    without gradients through the reference (the adapter disabled)."""

    task_validation = False  # selection on the validation pairs' DPO loss
    sequences_per_item = 2
    packable = False  # the loss sums each row's log-probabilities

    @staticmethod
    def encode(tokenizer: Any, examples: Sequence[Example], max_length: int) -> PairDataset:
        items = []
        for ex in examples:
            # Earlier assistant turns of the prompt are context, not trained.
            prompt = [{**m, "weight": 0} if m.get("role") == "assistant" else m for m in ex.prompt]
            items.append(PairEncoded(*(encode(tokenizer, [*prompt, _reply(ex, key)], max_length=max_length, tools=ex.tools)
                                       for key in ("chosen", "rejected"))))
        for item, ex in zip(items, examples):
            if not item.chosen.n_trained or not item.rejected.n_trained:
                raise DataError(f"{ex.source or 'an example'}: the prompt fills backend.max_length, so no reply token "
                                f"is left to compare; raise backend.max_length.")
        return PairDataset(items)

    @staticmethod
    def collate(items: Sequence[PairEncoded], pad_id: int) -> dict[str, torch.Tensor]:
        """Chosen replies in the first half of the batch, rejected in the second."""
        return collate([x.chosen for x in items] + [x.rejected for x in items], pad_id)

    def compute_loss(self, batch: dict[str, torch.Tensor], *, training: bool) -> tuple[torch.Tensor, int, dict[str, torch.Tensor]]:
        pairs = batch["input_ids"].shape[0] // 2
        policy = sequence_logprobs(self.model, batch, fast_head=self.fast_head)
        with torch.no_grad(), self.model.disable_adapter():
            reference = sequence_logprobs(self.model, batch, fast_head=self.fast_head)
        loss, stats = dpo_loss(policy[:pairs], policy[pairs:], reference[:pairs], reference[pairs:],
                               beta=self.hp.beta, label_smoothing=self.hp.label_smoothing)
        return loss, pairs, stats
