"""Which process writes the run: global rank 0 only, also on several nodes started without a scheduler
(tests/e2e/test_training_robustness.py runs two such nodes)."""

from __future__ import annotations

import pytest
from lightning.fabric.utilities.rank_zero import rank_zero_only

from ftframe.engine.ranks import is_global_zero, node_rank


@pytest.fixture
def clean_env(monkeypatch):
    for key in ("NODE_RANK", "GROUP_RANK", "RANK", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    return monkeypatch


def test_one_process_is_global_zero(clean_env):
    assert node_rank() == 0 and is_global_zero()


def test_the_first_process_of_node_one_is_not_global_zero(clean_env):
    # LightningEnvironment: rank_zero_only knows only the local rank (0) until the strategy is set up
    clean_env.setenv("NODE_RANK", "1")
    assert node_rank() == 1 and not is_global_zero()
    clean_env.delenv("NODE_RANK")
    clean_env.setenv("GROUP_RANK", "2")  # torchrun's name for it
    assert not is_global_zero()


def test_a_set_up_strategys_rank_decides(clean_env):
    clean_env.setattr(rank_zero_only, "rank", 1)
    assert not is_global_zero()
