"""Checkpoints written straight to disk: Lightning's ``TorchCheckpointIO`` serialises a checkpoint into an
in-memory buffer and copies that buffer once more to write it (``lightning.fabric.utilities.cloud_io.
_atomic_save``), so saving a full fine-tuning checkpoint (weights + AdamW state: 12 bytes per fp32
parameter) briefly took twice its size in RAM again — 24 GB more for a 1B-parameter model, measured by
``scripts/bench_memory.py`` as a run killed at its first checkpoint. Here ``torch.save`` streams into a
temporary file beside the target, renamed over it when complete (as atomic as Lightning's transaction)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class StreamingCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` without the in-memory copy for local paths (remote URLs go to Lightning's)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        try:
            torch.save(checkpoint, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
