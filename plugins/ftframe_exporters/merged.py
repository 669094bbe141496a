"""Base + adapter merged into plain safetensors with tokenizer and chat template (no peft needed)."""

from __future__ import annotations

from dataclasses import dataclass

from ftframe.api import ExportContext, Exporter, ExportResult
from ftframe.config import one_of
from ftframe.engine import VerifyOptions, load_pretrained, torch_dtype
from ftframe.io import atomic_path
from ftframe_exporters.weights import local_model, merged_copy, verify_artefact

SAVE_DTYPES = ("fp32", "bf16", "fp16")
"""The dtypes a merged folder can be saved in (names of :data:`ftframe.engine.DTYPES`)."""


@dataclass
class MergedConfig(VerifyOptions):
    dirname: str = "merged"
    """Folder below the run dir."""
    dtype: str = "fp32"
    """Weight dtype of the saved model: ``fp32`` (verified to rtol 1e-4), ``bf16`` or ``fp16`` (half the size,
    verified to that format's tolerance)."""

    def __post_init__(self) -> None:
        one_of("exporters.merged.dtype", self.dtype, SAVE_DTYPES)


class MergedExporter(Exporter):
    """Merges the adapter into the base weights, saves a Hugging Face folder, reloads it with
    ``AutoModelForCausalLM.from_pretrained`` (``AutoModelForSequenceClassification`` for a
    ``backend.head=classifier`` run, its labels named in ``id2label``) and checks it against the
    in-memory model."""

    name = "merged"
    accepts = frozenset({"adapter", "full"})
    Config = MergedConfig

    def export(self, ctx: ExportContext) -> ExportResult:
        model, tokenizer = local_model(ctx, self.name)
        dtype = torch_dtype(self.config.dtype)
        out = ctx.run_dir / self.config.dirname
        with atomic_path(out) as tmp:
            merged = merged_copy(model).to(dtype)
            merged.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            del merged
            reloaded, reloaded_tok = load_pretrained(tmp, dtype=dtype)
            details = verify_artefact(ctx, model, tokenizer, reloaded, reloaded_tok, precision=self.config.dtype,
                                      options=self.config, what=f"merged export for {out}")
        return ExportResult([str(out)], verified=True, details={"dtype": self.config.dtype, "verification": details})
