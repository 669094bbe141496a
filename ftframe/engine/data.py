"""Tokenised datasets, batching with little padding, and the Lightning DataModule."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ftframe.api import Example
from ftframe.engine.chat import Encoded, encode


class EncodedDataset(Dataset):
    def __init__(self, items: Sequence[Encoded]):
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Encoded:
        return self.items[i]

    @property
    def lengths(self) -> list[int]:
        return [len(x.input_ids) for x in self.items]


def encode_examples(tokenizer: Any, examples: Sequence[Example], max_length: int) -> EncodedDataset:
    return EncodedDataset([encode(tokenizer, ex.messages, max_length=max_length, tools=ex.tools)
                           for ex in examples])


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches of similar length: less padding, same examples per epoch.

    Indices are shuffled, cut into windows of ``batch_size * window`` examples, sorted by length inside
    each window, batched, and the batches shuffled (seeded per epoch, so runs are reproducible).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, window: int = 16,
                 shuffle: bool = True):
        self.lengths, self.batch_size, self.seed, self.window, self.shuffle = list(lengths), batch_size, seed, window, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> LengthGroupedBatchSampler:
        """Lightning calls ``batch_sampler.sampler.set_epoch(epoch)`` at each epoch start, also after a
        resume, so a resumed run draws the same order for that epoch as an uninterrupted one."""
        return self

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 100_003 + self.epoch)
        idx = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(idx)
        span = self.batch_size * self.window
        batches = []
        for w in range(0, len(idx), span):
            chunk = sorted(idx[w:w + span], key=lambda i: self.lengths[i])
            batches += [chunk[b:b + self.batch_size] for b in range(0, len(chunk), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        self.epoch += 1
        yield from batches

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size


def collate(items: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding)."""
    n = max(len(x.input_ids) for x in items)
    ids = torch.full((len(items), n), pad_id, dtype=torch.long)
    labels = torch.full((len(items), n), -100, dtype=torch.long)
    mask = torch.zeros((len(items), n), dtype=torch.long)
    for i, x in enumerate(items):
        k = len(x.input_ids)
        ids[i, :k] = torch.tensor(x.input_ids)
        labels[i, :k] = torch.tensor(x.labels)
        mask[i, :k] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class ChatDataModule(L.LightningDataModule):
    """Training batches (length-grouped) and, when given, validation batches in the same collation.

    ``collate_fn(items, pad_id)`` turns dataset items into a batch; an objective with another item shape
    (e.g. preference pairs) passes its own.
    """

    def __init__(self, train: EncodedDataset, pad_id: int, batch_size: int, seed: int,
                 group_by_length: bool = True, val: Dataset | None = None,
                 collate_fn: Callable[[Sequence[Any], int], dict[str, torch.Tensor]] = collate):
        super().__init__()
        self.train, self.val, self.pad_id, self.batch_size, self.seed = train, val, pad_id, batch_size, seed
        self.group_by_length, self.collate_fn = group_by_length, collate_fn

    def _collate(self, items: Sequence[Any]) -> dict[str, torch.Tensor]:
        return self.collate_fn(items, self.pad_id)

    def train_dataloader(self) -> DataLoader:
        if self.group_by_length:
            sampler = LengthGroupedBatchSampler(self.train.lengths, self.batch_size, self.seed)
            return DataLoader(self.train, batch_sampler=sampler, collate_fn=self._collate)
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True, generator=gen,
                          collate_fn=self._collate)

    def val_dataloader(self) -> DataLoader:
        if self.val is None:
            return []  # type: ignore[return-value]
        return DataLoader(self.val, batch_size=self.batch_size, collate_fn=self._collate)
