"""Which process of a distributed run this is, as Lightning sees it (no distribution code of our own).

Lightning's launchers and cluster environments set it: ``LOCAL_RANK`` for the processes its ``ddp``
launcher starts, ``RANK`` under torchrun, ``SLURM_PROCID`` under SLURM; once a strategy is set up it
is the strategy's global rank. Rank 0 evaluates, exports and writes the run's files; the others train.

One case needs the node rank too: Lightning's own ``LightningEnvironment`` on several nodes without a
scheduler (each node started with ``NODE_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``). Until its strategy is
set up, ``rank_zero_only`` knows only the rank within the node (0 for each node's first process), so a
process on a node other than node 0 would pass for global rank 0 and write the run's files.
"""

from __future__ import annotations

import os


def global_rank() -> int:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def node_rank() -> int:
    """The node of this process as ``LightningEnvironment`` reads it (``NODE_RANK``, else ``GROUP_RANK``)."""
    return int(os.environ.get("NODE_RANK") or os.environ.get("GROUP_RANK") or 0)


def is_global_zero() -> bool:
    # Global rank 0 runs on node 0 under every launcher (torchrun and SLURM give global ranks already).
    return global_rank() == 0 and node_rank() == 0
