"""The PEFT adapter folder (loadable with ``PeftModel.from_pretrained``) plus the tokenizer."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ftframe.api import ExportContext, Exporter, ExportResult
from ftframe.errors import FtframeError


@dataclass
class AdapterConfig:
    dirname: str = "adapter"
    """Folder below the run dir."""


class AdapterExporter(Exporter):
    """Saves the trained adapter and tokenizer, then reloads the files and checks every tensor is equal."""

    name = "adapter"
    Config = AdapterConfig

    def export(self, ctx: ExportContext) -> ExportResult:
        from peft import PeftConfig, get_peft_model_state_dict
        from safetensors.torch import load_file

        trained = ctx.trained
        if trained.kind != "adapter" or trained.model is None:
            raise FtframeError(f"exporter 'adapter' needs a locally trained adapter; this run produced "
                               f"{trained.kind!r}. Remove 'adapter' from exporters.")
        out = ctx.run_dir / self.config.dirname
        trained.model.save_pretrained(out)
        trained.tokenizer.save_pretrained(out)
        PeftConfig.from_pretrained(out)  # the config must load back
        saved = load_file(out / "adapter_model.safetensors")
        memory = get_peft_model_state_dict(trained.model)
        mismatched = [k for k, v in memory.items() if k not in saved or not torch.equal(saved[k], v.detach().cpu())]
        if mismatched or len(saved) != len(memory):
            raise FtframeError(f"adapter export at {out} does not match the trained weights "
                               f"({len(mismatched)} tensors differ); the files are not usable.")
        return ExportResult([str(out)], verified=True, details={"tensors": len(saved)})
