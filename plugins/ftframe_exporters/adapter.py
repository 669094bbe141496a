"""The PEFT adapter folder (loadable with ``PeftModel.from_pretrained``) plus the tokenizer."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from ftframe.api import ExportContext, Exporter, ExportResult
from ftframe.engine import VerificationFailed, VerifyOptions
from ftframe.errors import FtframeError
from ftframe.io import atomic_path
from ftframe_exporters.weights import local_model, verify_artefact


@dataclass
class AdapterConfig(VerifyOptions):
    dirname: str = "adapter"
    """Folder below the run dir."""


class AdapterExporter(Exporter):
    """Saves the trained adapter and tokenizer, reloads them onto a copy of the base with
    ``PeftModel.from_pretrained`` and checks every tensor, and the logits and greedy output, are exactly equal."""

    name = "adapter"
    accepts = frozenset({"adapter"})
    Config = AdapterConfig

    def export(self, ctx: ExportContext) -> ExportResult:
        import torch
        from peft import PeftModel, get_peft_model_state_dict
        from safetensors.torch import load_file

        model, tokenizer = local_model(ctx, self.name)
        if ctx.trained.kind != "adapter" or not isinstance(model, PeftModel):
            raise FtframeError(f"exporter 'adapter' needs a locally trained adapter; this run produced "
                               f"{ctx.trained.kind!r}. Remove 'adapter' from exporters (use 'merged').")
        out = ctx.run_dir / self.config.dirname
        with atomic_path(out) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            saved = load_file(tmp / "adapter_model.safetensors")
            memory = get_peft_model_state_dict(model)
            differ = [k for k, v in memory.items() if k not in saved or not torch.equal(saved[k], v.detach().cpu())]
            if differ or len(saved) != len(memory):
                raise VerificationFailed(f"adapter export for {out}: {len(differ) or abs(len(saved) - len(memory))} "
                                         "tensors differ from the trained weights; the files were discarded.")
            base = copy.deepcopy(model).unload()  # the same base weights, without the adapter layers
            reloaded = PeftModel.from_pretrained(base, tmp, autocast_adapter_dtype=True)
            from transformers import AutoTokenizer

            reloaded_tok = AutoTokenizer.from_pretrained(tmp)
            if reloaded_tok.pad_token is None:
                reloaded_tok.pad_token = reloaded_tok.eos_token
            details = verify_artefact(ctx, model, tokenizer, reloaded, reloaded_tok, precision="exact",
                                      options=self.config, what=f"adapter export for {out}")
        return ExportResult([str(out)], verified=True, details={"tensors": len(saved), "verification": details})
