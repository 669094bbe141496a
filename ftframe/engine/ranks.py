"""Which process of a distributed run this is, as Lightning sees it (no distribution code of our own).

Lightning's launchers and cluster environments set it: ``LOCAL_RANK`` for the processes its ``ddp``
launcher starts, ``RANK`` under torchrun, ``SLURM_PROCID`` under SLURM; once a strategy is set up it
is the strategy's global rank. Rank 0 evaluates, exports and writes the run's files; the others train.
"""

from __future__ import annotations


def global_rank() -> int:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def is_global_zero() -> bool:
    return global_rank() == 0
