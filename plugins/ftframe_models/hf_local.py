"""A Hugging Face model folder on disk (config.json, safetensors weights, tokenizer, chat template)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from ftframe.api import LoadedModel, ModelSource
from ftframe.engine import load_pretrained, load_tokenizer
from ftframe.errors import ConfigError
from ftframe.preflight.input_paths import input_problem


@dataclass
class HfLocalConfig:
    path: str = MISSING
    """Folder with config.json, weights and tokenizer files."""
    dtype: str | None = None
    """Load dtype (fp32, bf16); the backend's precision decides when unset."""


class HfLocal(ModelSource):
    """A local Hugging Face model folder."""

    name = "hf_local"
    path_kind = "folder"
    Config = HfLocalConfig

    def folder(self) -> Path:
        path = Path(self.config.path)
        problem = input_problem(path, "model.path", self.path_kind)
        if problem:
            raise ConfigError(problem)
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.path: {path} is not a Hugging Face model folder (no config.json).")
        return path

    def load_tokenizer(self) -> Any:
        return load_tokenizer(self.folder())

    def load(self, *, dtype: Any = None) -> LoadedModel:
        path = self.folder()
        model, tok = load_pretrained(path, dtype=self.config.dtype or dtype)
        return LoadedModel(model, tok, name=path.name, path=path, info={"path": str(path.resolve())})
