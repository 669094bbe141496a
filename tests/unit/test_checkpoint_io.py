"""Checkpoints stream to disk (ftframe.engine.checkpoint_io): no in-memory copy of the checkpoint."""

from __future__ import annotations

import tracemalloc

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ftframe.engine.checkpoint_io import StreamingCheckpointIO

MB = 1 << 20


def _traced_peak(io, checkpoint, path) -> int:
    tracemalloc.start()
    try:
        io.save_checkpoint(checkpoint, path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_checkpoint_is_written_without_a_copy_in_memory(tmp_path):
    checkpoint = {"state_dict": {"w": torch.arange(16 * MB, dtype=torch.float32)}, "epoch": 3}  # 64 MB
    # Lightning's own IO holds the serialised checkpoint in a BytesIO and copies it to write it
    assert _traced_peak(TorchCheckpointIO(), checkpoint, tmp_path / "lightning.ckpt") > 64 * MB
    path = tmp_path / "sub" / "last.ckpt"
    assert _traced_peak(StreamingCheckpointIO(), checkpoint, path) < 4 * MB
    loaded = StreamingCheckpointIO().load_checkpoint(path)
    assert loaded["epoch"] == 3 and torch.equal(loaded["state_dict"]["w"], checkpoint["state_dict"]["w"])
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no partial file left


def test_an_interrupted_save_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    StreamingCheckpointIO().save_checkpoint({"step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    try:
        StreamingCheckpointIO().save_checkpoint({"step": 2, "bad": Unpicklable()}, path)
    except RuntimeError:
        pass
    assert torch.load(path, weights_only=False)["step"] == 1 and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
