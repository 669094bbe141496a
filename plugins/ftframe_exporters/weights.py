"""What the weight exporters share: the trained model, a merged fp32 copy of it, and verification."""

from __future__ import annotations

import copy
from typing import Any

from ftframe.api import ExportContext
from ftframe.errors import FtframeError


def local_model(ctx: ExportContext, exporter: str) -> tuple[Any, Any]:
    """The trained model and tokenizer held in memory; a clear error for a remote (provider) model."""
    trained = ctx.trained
    if trained.model is None or trained.tokenizer is None:
        raise FtframeError(f"exporter {exporter!r} needs the trained weights in this process; this run produced a "
                           f"{trained.kind!r} model{f' ({trained.remote_id})' if trained.remote_id else ''}. "
                           f"Remove {exporter!r} from exporters.")
    return trained.model, trained.tokenizer


def merged_copy(model: Any) -> Any:
    """A plain fp32 copy of ``model`` with any PEFT adapter merged in; ``model`` itself is untouched.

    The merge is done in fp32 even when the base was held in bf16 for training: adding a small LoRA
    update to bf16 weights rounds much of it away (bf16 keeps 8 mantissa bits).
    """
    from peft import PeftModel

    clone = copy.deepcopy(model).float()
    if isinstance(clone, PeftModel):
        clone = clone.merge_and_unload()
    clone.eval()
    return clone


def verify_artefact(ctx: ExportContext, reference: Any, tokenizer: Any, artefact: Any, artefact_tokenizer: Any,
                    *, precision: str, options: Any, what: str) -> dict[str, Any]:
    """Run :func:`ftframe.engine.verify.verify_reload` on the run's first test prompts."""
    from ftframe.engine import verification_prompts, verify_reload

    prompts = verification_prompts(ctx.predictions, int(options.verify_prompts))
    return verify_reload(reference, tokenizer, artefact, artefact_tokenizer, prompts, precision=precision,
                         max_new_tokens=int(options.verify_tokens), what=what)
