"""The preference objectives (LightningModules) of ``backend=dpo|ipo|simpo|orpo|kto``.

Paired methods (DPO, IPO, SimPO, ORPO) encode a prompt with its chosen and its rejected reply and pass
both through the policy in one forward pass; DPO and IPO also through the reference, which is the same
model with the LoRA adapter switched off (peft's ``disable_adapter()``: no second copy). SimPO and ORPO
are reference-free and never run it. KTO trains on unpaired replies labelled desirable/undesirable. The
losses are in :mod:`ftframe_backends.preference_losses`. Written on the backend toolkit
(``ftframe.engine``), so they run on our engine (checkpoints, resume, Lightning strategies) rather than
on a second trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ftframe.api import Example, Message
from ftframe.engine import CausalLMModule, Encoded, collate, encode, sequence_logprobs
from ftframe.errors import DataError
from ftframe_backends.preference_losses import dpo_loss, ipo_loss, kto_loss, orpo_loss, simpo_loss


def _context(ex: Example) -> list[Message]:
    """The prompt of ``ex``; earlier assistant turns in it are context, not trained."""
    return [{**m, "weight": 0} if m.get("role") == "assistant" else m for m in ex.prompt]


def _checked(items: Sequence[Encoded], examples: Sequence[Example]) -> None:
    for item, ex in zip(items, examples):
        if not item.n_trained:
            raise DataError(f"{ex.source or 'an example'}: the prompt fills backend.max_length, so no reply token "
                            f"is left to learn from; raise backend.max_length.")


def _rows(batch: dict[str, torch.Tensor], part: slice) -> dict[str, torch.Tensor]:
    return {k: batch[k][part] for k in ("input_ids", "attention_mask", "labels")}


# ---------------------------------------------------------------------------------------------- pairs
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


def _reply(ex: Example, key: str, method: str) -> Message:
    msg = getattr(ex, key)
    if not isinstance(msg, dict) or msg.get("role", "assistant") != "assistant" or not isinstance(msg.get("content"), str):
        raise DataError(f"{ex.source or 'an example'}: backend={method} needs preference pairs, each with a "
                        f"'{key}' assistant message ({{\"role\": \"assistant\", \"content\": ...}}); got {msg!r}. "
                        f"Use preference data (chat_jsonl with chosen/rejected, or a DPO format).")
    return {"role": "assistant", "content": msg["content"]}


class PairwiseModule(CausalLMModule):
    """A paired preference objective: chosen and rejected rows in one batch (chosen first), their reply
    log-probabilities under the policy and, if :attr:`uses_reference`, under the reference; a subclass
    implements :meth:`pair_loss`."""

    method: ClassVar[str] = ""
    """The backend name, for messages."""
    uses_reference: ClassVar[bool] = True
    """Run the reference (adapter off); False for reference-free methods, which never run it."""
    average_logprobs: ClassVar[bool] = False
    """Per-token average reply log-probabilities instead of sums."""
    task_validation = False  # selection on the validation pairs' loss
    sequences_per_item = 2
    packable = False  # the loss needs each row's own sum

    @classmethod
    def encode(cls, tokenizer: Any, examples: Sequence[Example], max_length: int) -> PairDataset:
        items = [PairEncoded(*(encode(tokenizer, [*_context(ex), _reply(ex, key, cls.method)], max_length=max_length,
                                      tools=ex.tools) for key in ("chosen", "rejected"))) for ex in examples]
        _checked([x.chosen for x in items], examples)
        _checked([x.rejected for x in items], examples)
        return PairDataset(items)

    @staticmethod
    def collate(items: Sequence[PairEncoded], pad_id: int) -> dict[str, torch.Tensor]:
        """Chosen replies in the first half of the batch, rejected in the second."""
        return collate([x.chosen for x in items] + [x.rejected for x in items], pad_id)

    def pair_loss(self, policy: torch.Tensor, reference: torch.Tensor | None, batch: dict[str, torch.Tensor],
                  pairs: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss from the reply log-probabilities (``[2 * pairs]``, chosen first)."""
        raise NotImplementedError

    def compute_loss(self, batch: dict[str, torch.Tensor], *, training: bool) -> tuple[torch.Tensor, int, dict[str, torch.Tensor]]:
        pairs = batch["input_ids"].shape[0] // 2
        policy = sequence_logprobs(self.model, batch, fast_head=self.fast_head, average=self.average_logprobs)
        reference = None
        if self.uses_reference:
            with torch.no_grad(), self.model.disable_adapter():
                reference = sequence_logprobs(self.model, batch, fast_head=self.fast_head, average=self.average_logprobs)
        loss, stats = self.pair_loss(policy, reference, batch, pairs)
        return loss, pairs, stats


class DPOModule(PairwiseModule):
    method = "dpo"

    def pair_loss(self, policy, reference, batch, pairs):
        return dpo_loss(policy[:pairs], policy[pairs:], reference[:pairs], reference[pairs:],
                        beta=self.hp.beta, label_smoothing=self.hp.label_smoothing)


class IPOModule(PairwiseModule):
    method = "ipo"
    average_logprobs = True

    def pair_loss(self, policy, reference, batch, pairs):
        return ipo_loss(policy[:pairs], policy[pairs:], reference[:pairs], reference[pairs:], tau=self.hp.beta)


class SimPOModule(PairwiseModule):
    method = "simpo"
    uses_reference = False
    average_logprobs = True

    def pair_loss(self, policy, reference, batch, pairs):
        return simpo_loss(policy[:pairs], policy[pairs:], beta=self.hp.beta, gamma=self.hp.gamma,
                          label_smoothing=self.hp.label_smoothing)


class ORPOModule(PairwiseModule):
    method = "orpo"
    uses_reference = False
    average_logprobs = True

    def pair_loss(self, policy, reference, batch, pairs):
        # The supervised part: the chosen replies' next-token loss, mean per token (as a causal-LM loss).
        tokens = (batch["labels"][:pairs, 1:] != -100).sum(1).clamp(min=1).to(policy.dtype)
        chosen_nll = -(policy[:pairs] * tokens).sum() / tokens.sum()
        return orpo_loss(policy[:pairs], policy[pairs:], chosen_nll, lam=self.hp.beta)


# --------------------------------------------------------------------------------------- labelled (KTO)
@dataclass
class LabelledEncoded:
    reply: Encoded
    """The prompt with its own reply."""
    mismatched: Encoded
    """The prompt with the next example's reply: what ``KL(π‖ref)`` is estimated on."""
    desirable: bool

    @property
    def truncated(self) -> bool:
        return self.reply.truncated


class LabelledDataset(PairDataset):
    @property
    def lengths(self) -> list[int]:
        return [max(len(x.reply.input_ids), len(x.mismatched.input_ids)) for x in self.items]


class KTOModule(CausalLMModule):
    """KTO on replies labelled desirable/undesirable. The reference point ``z`` is estimated as TRL does:
    each prompt is paired with the next example's reply (a mismatched pair, fixed when the data is
    encoded), and ``z = max(0, mean(log π − log ref))`` over the batch's mismatched pairs (averaged over
    the ranks of a distributed run), without gradient."""

    task_validation = False
    sequences_per_item = 2
    packable = False

    @staticmethod
    def encode(tokenizer: Any, examples: Sequence[Example], max_length: int) -> LabelledDataset:
        unlabelled = [ex for ex in examples if not ex.is_labelled]
        if unlabelled:
            raise DataError(f"{unlabelled[0].source or 'an example'}: backend=kto needs every example's reply "
                            f"labelled desirable or undesirable ('label': true/false); {len(unlabelled)} of "
                            f"{len(examples)} have no label.")
        replies = [ex.messages[len(ex.prompt)] for ex in examples]
        items = [LabelledEncoded(encode(tokenizer, [*_context(ex), replies[i]], max_length=max_length, tools=ex.tools),
                                 encode(tokenizer, [*_context(ex), replies[(i + 1) % len(examples)]],
                                        max_length=max_length, tools=ex.tools),
                                 bool(ex.desirable)) for i, ex in enumerate(examples)]
        _checked([x.reply for x in items], examples)
        return LabelledDataset(items)

    @staticmethod
    def collate(items: Sequence[LabelledEncoded], pad_id: int) -> dict[str, torch.Tensor]:
        """The replies in the first half of the batch, the mismatched pairs in the second."""
        batch = collate([x.reply for x in items] + [x.mismatched for x in items], pad_id)
        batch["desirable"] = torch.tensor([x.desirable for x in items])
        return batch

    def compute_loss(self, batch: dict[str, torch.Tensor], *, training: bool) -> tuple[torch.Tensor, int, dict[str, torch.Tensor]]:
        n = batch["desirable"].shape[0]
        policy = sequence_logprobs(self.model, _rows(batch, slice(0, n)), fast_head=self.fast_head)
        with torch.no_grad():
            mismatched = sequence_logprobs(self.model, _rows(batch, slice(n, None)), fast_head=self.fast_head)
            with self.model.disable_adapter():
                reference = sequence_logprobs(self.model, batch, fast_head=self.fast_head)
            kl = (mismatched - reference[n:]).mean()
            if getattr(self, "_trainer", None) is not None:
                kl = self.trainer.strategy.reduce(kl, reduce_op="mean")
        loss, stats = kto_loss(policy, reference[:n], batch["desirable"], kl, beta=self.hp.beta,
                               desirable_weight=self.hp.desirable_weight, undesirable_weight=self.hp.undesirable_weight)
        return loss, n, stats
