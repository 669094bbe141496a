"""Silence third-party chatter on the terminal (not errors): the CLI calls this, library code never does."""

from __future__ import annotations

import logging
import os
import warnings

NOISE = (
    r".*is_gradient_checkpointing.*", r".*LeafSpec.*", r".*does not have many workers.*",
    r".*smaller than the logging interval.*", r".*module\(s\) in eval mode.*", r".*limit_val_batches.*",
    # The engine reduces validation values over the ranks itself (ftframe.engine.module).
    r".*sync_dist=True.*", r".*all_gather is deprecated.*",
)


def quiet_third_party() -> None:
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    import lightning.pytorch  # noqa: F401  - it sets its loggers to INFO on import; ours must come after

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # bitsandbytes (imported by peft) warns on every CPU run that an optional kernels package is missing.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    for pattern in NOISE:
        warnings.filterwarnings("ignore", message=pattern)
