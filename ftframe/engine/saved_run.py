"""Load a finished run back from its run dir: config, manifest, tuned model, tokenizer, predictor.

``load_saved_run(run_dir)`` is what ``ftframe export``, ``predict``, ``serve`` (and the eval/rerun
commands) build on. It reads ``config.yaml`` and ``manifest.json``, checks that the run succeeded, and
loads the weights its exporters wrote:

- ``adapter/`` (PEFT): the base model comes from the run's own model source (``config.yaml``'s
  ``model`` group, through the plugins), in the dtype it was trained in, and the adapter is applied on
  top — the same arithmetic as the model that was evaluated;
- ``merged/``: a plain Hugging Face folder, used when there is no adapter (or with ``prefer="merged"``).

A missing, incomplete, still-running or failed run dir is a :class:`RunDirError` saying what is wrong
and what to do.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ftframe.api import Example, Prediction, TaskInfo
from ftframe.engine.loading import load_pretrained, load_tokenizer
from ftframe.errors import FtframeError
from ftframe.preflight.input_paths import input_problem, os_error_message

RUN_DIR = "RUN_DIR"
"""How messages about a run dir name the argument that gave it."""
WEIGHT_KINDS = ("adapter", "merged")
"""Exports that hold the tuned weights, in the order ``load_saved_run`` prefers them."""


class RunDirError(FtframeError):
    """A run dir cannot be used: missing, incomplete, still running, failed, or without weights."""


@dataclass
class SavedRun:
    """A finished run loaded from disk (see :func:`load_saved_run`)."""

    run_dir: Path
    config: DictConfig
    """The resolved run config (``config.yaml``)."""
    manifest: dict[str, Any]
    model: Any
    """The tuned model in eval mode (a ``PeftModel`` for ``weights == "adapter"``)."""
    tokenizer: Any
    weights: str
    """Which export was loaded: ``adapter`` or ``merged``."""
    weights_path: Path
    task: TaskInfo
    """The run's task, with the label set it was trained and evaluated on."""
    name: str = ""
    """A display name, e.g. ``tiny (SmolLM2-135M-Instruct + LoRA)``."""
    info: dict[str, Any] = field(default_factory=dict)
    backend: Any = None
    """The backend plugin that trained the model, where it builds the predictor: for an adapter, and for
    merged weights with a class head; ``None`` for other merged weights."""

    def predictor(self, *, batch_size: int | None = None) -> Any:
        """A predictor over the tuned model: the training backend's (:meth:`ftframe.api.Backend.tuned_predictor`)
        where :attr:`backend` is set, else a :class:`~ftframe.engine.predict.LocalPredictor`."""
        from ftframe.engine.predict import LocalPredictor

        size = batch_size or int(self.config.get("eval", {}).get("batch_size") or 16)
        precision = str(self.config.get("eval", {}).get("precision") or "auto")
        if self.backend is not None:
            own = self.backend.tuned_predictor(self.model, self.tokenizer, self.task, name=self.name,
                                               batch_size=size, precision=precision)
            if own is not None:  # None: the backend keeps the default
                return own
        return LocalPredictor(self.model, self.tokenizer, name=self.name, batch_size=size, precision=precision)

    def split(self, name: str = "test") -> list[Example]:
        """The examples of a split as the run saved them (``data/<name>.jsonl``)."""
        path = self.run_dir / "data" / f"{name}.jsonl"
        if not path.is_file():
            raise RunDirError(f"{path} is missing: the run dir has no '{name}' split.")
        return [Example.from_record(r, f"{path}:{i}") for i, r in enumerate(_read_jsonl(path), start=1)]

    def predictions(self, prefix: str = "") -> list[Prediction]:
        """The saved test predictions (``<prefix>predictions.jsonl``); empty when the file is absent."""
        path = self.run_dir / f"{prefix}predictions.jsonl"
        if not path.is_file():
            return []
        return [Prediction.from_record(r) for r in _read_jsonl(path)]

    def metrics(self) -> dict[str, Any]:
        """``metrics.json`` (test/baseline/train/data); empty when the file is absent."""
        return read_metrics(self.run_dir)

    def release(self) -> None:
        """Drop the model (a long-lived process that loads many runs calls this between them)."""
        self.model = None


def _read_text(path: Path) -> str:
    """A file of the run dir as text; an unreadable one is a :class:`RunDirError` saying why."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RunDirError(os_error_message(exc, RUN_DIR, path)) from None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RunDirError(f"{path}:{n}: not valid JSON ({exc.msg}); the run dir is damaged.") from exc
    return rows


def read_run_dir(run_dir: str | Path) -> tuple[Path, DictConfig, dict[str, Any]]:
    """``(run_dir, config, manifest)`` of a run that finished successfully, without loading weights."""
    run_dir = Path(run_dir)
    if not _exists(run_dir) or os.path.isfile(run_dir):
        raise RunDirError(f"{run_dir} is not a directory; pass the run dir a job wrote (e.g. outputs/TASK/DATE).")
    unreadable = input_problem(run_dir, RUN_DIR, "folder", deep=False)
    if unreadable:
        raise RunDirError(unreadable)
    missing = [n for n in ("config.yaml", "manifest.json") if not _exists(run_dir / n)]
    for name in ("config.yaml", "manifest.json"):
        if name not in missing and (unreadable := input_problem(run_dir / name, RUN_DIR, "file", records=True)):
            raise RunDirError(unreadable)
    if missing:
        raise RunDirError(f"{run_dir} is not a complete ftframe run dir: {', '.join(missing)} missing. "
                          "Pass the folder a job wrote (it holds config.yaml and manifest.json).")
    try:
        manifest = json.loads(_read_text(run_dir / "manifest.json"))
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{run_dir / 'manifest.json'}: not valid JSON ({exc.msg}, line {exc.lineno}).") from exc
    status = manifest.get("status")
    if status != "succeeded":
        why = {"running": "it is still running, or was killed before it finished (rerun it)",
               "gate_failed": "it failed its gate, so nothing was exported (fix the model or the gate, then rerun)",
               "failed": f"it failed ({manifest.get('error') or 'see its log'})",
               "interrupted": "it was interrupted (rerun it)"}.get(str(status), f"its status is {status!r}")
        raise RunDirError(f"{run_dir}: cannot use this run: {why}.")
    config = OmegaConf.load(run_dir / "config.yaml")
    if not isinstance(config, DictConfig):
        raise RunDirError(f"{run_dir / 'config.yaml'} is not a mapping; the run dir is damaged.")
    return run_dir, with_schema_defaults(config), manifest


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; a folder on the way that may not be searched counts as existing (its problem is
    then reported by :func:`~ftframe.preflight.input_paths.input_problem`)."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True


def with_schema_defaults(config: DictConfig) -> DictConfig:
    """``config`` with the defaults of keys the run schema gained after it was written (e.g. ``eval.precision``),
    so an older run dir stays usable; every value the run recorded is kept."""
    from dataclasses import asdict

    from ftframe.config.schema import RunSchema

    return OmegaConf.merge(OmegaConf.create(asdict(RunSchema())), config)  # type: ignore[return-value]


def weights_folder(run_dir: Path, manifest: dict[str, Any], kind: str) -> Path | None:
    """The folder the ``kind`` exporter wrote (from the manifest's ``exports``), if it is complete."""
    entry = (manifest.get("exports") or {}).get(kind) or {}
    paths = entry.get("paths") or []
    if not paths or entry.get("verified") is False:
        return None
    marker = "adapter_config.json" if kind == "adapter" else "config.json"
    # Exporters write below the run dir, and the dir may have moved since: match the recorded path's
    # longest tail that exists inside ``run_dir`` (never a folder outside it).
    recorded = Path(paths[0])
    parts = recorded.parts[1:] if recorded.is_absolute() else recorded.parts
    for i in range(len(parts)):
        folder = run_dir.joinpath(*parts[i:])
        if (folder / marker).is_file():
            return folder
    return None


def trained_dtype(manifest: dict[str, Any]) -> str:
    """The dtype the frozen base was held in during training (``bf16`` for ``bf16-true``, else ``fp32``)."""
    precision = ((manifest.get("metrics") or {}).get("train") or {}).get("precision")
    return "bf16" if precision == "bf16-true" else "fp32"


def load_saved_run(run_dir: str | Path, *, prefer: str | None = None, pm: Any = None) -> SavedRun:
    """Load the tuned model of a finished run from ``run_dir``.

    ``prefer``: ``adapter`` or ``merged`` to choose which export to load (default: the adapter when
    there is one — it reproduces the evaluated model exactly — else the merged weights).
    ``pm``: a plugin manager (default: the installed plugins), used to load the adapter's base model.
    """
    from ftframe.engine.predict import guard_head_input
    from ftframe.engine.verify import generates_text

    run_dir, config, manifest = read_run_dir(run_dir)
    if prefer is not None and prefer not in WEIGHT_KINDS:
        raise RunDirError(f"prefer={prefer!r}: expected one of {', '.join(WEIGHT_KINDS)}.")
    order = [prefer] if prefer else list(WEIGHT_KINDS)
    found = {k: weights_folder(run_dir, manifest, k) for k in order}
    kind = next((k for k in order if found[k] is not None), None)
    if kind is None:
        remote = ((manifest.get("metrics") or {}).get("trained_model") or {}).get("remote_id")
        hint = (f" The model was trained remotely ({remote}); use it through its provider." if remote else
                " Export the weights first: `ftframe export RUN_DIR exporters=[adapter]` needs them in memory, so "
                "rerun the job with the adapter or merged exporter enabled.")
        raise RunDirError(f"{run_dir}: no complete {' or '.join(order)} export found (manifest 'exports' lists "
                          f"{', '.join(manifest.get('exports') or {}) or 'none'}).{hint}")
    folder = found[kind]
    assert folder is not None
    unreadable = input_problem(folder, RUN_DIR, "folder")
    if unreadable:
        raise RunDirError(unreadable)
    task = saved_task(run_dir, config)
    backend = None
    if kind == "adapter":
        model, tokenizer, base_name, backend = _load_adapter(folder, config, manifest, task, pm)
    else:
        model, tokenizer = load_pretrained(folder)
        base_name = str(((manifest.get("metrics") or {}).get("train") or {}).get("base_model") or folder.name)
        if not generates_text(model):  # a class head answers, through the backend's predictor
            from ftframe.plugins import Registry, get_plugin_manager

            names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
            if task.labels is not None and names != list(task.labels):
                raise RunDirError(f"{folder}: the class head's labels {names} (config.json id2label) differ from "
                                  f"the run's label set {list(task.labels)}; the merged folder does not belong to "
                                  f"this run.")
            backend = _run_backend(Registry(pm or get_plugin_manager()), config, folder,
                                   "whose predictor reads the class head")
    model.eval()
    guard_head_input(model)
    name = f"{config.task.name} ({base_name} + {'LoRA' if kind == 'adapter' else 'merged'})"
    return SavedRun(run_dir=run_dir, config=config, manifest=manifest, model=model, tokenizer=tokenizer,
                    weights=kind, weights_path=folder, name=name, task=task, backend=backend)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """A run dir's ``metrics.json`` (test/baseline/train/data); empty when the file is absent."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); the run dir is damaged.") from exc


def saved_task(run_dir: Path, config: DictConfig) -> TaskInfo:
    """The run's task; its labels are those the run recorded in ``metrics.json`` (a classification task
    without ``task.labels`` takes them from its data), else ``task.labels``."""
    recorded = (read_metrics(run_dir).get("data") or {}).get("labels")
    from ftframe.engine.evaluate import task_info

    return task_info(config, labels=recorded or None)


def _run_backend(registry: Any, config: DictConfig, folder: Path, why: str) -> Any:
    """The backend plugin that trained the run, rebuilt from its saved config."""
    try:
        return registry.create("backend", str(config.backend.name), config.backend)
    except FtframeError as exc:
        raise RunDirError(f"{folder.parent}: cannot rebuild this run's backend (backend={config.backend.name}), "
                          f"{why}: {exc}") from exc


def _load_adapter(folder: Path, config: DictConfig, manifest: dict[str, Any], task: TaskInfo,
                  pm: Any) -> tuple[Any, Any, str, Any]:
    """The run's base model (through its model source plugin, in the trained dtype) plus the adapter, as
    the run's backend builds it (:meth:`ftframe.api.Backend.tuned_model`), and that backend."""
    from ftframe.plugins import Registry, get_plugin_manager

    registry = Registry(pm or get_plugin_manager())
    try:
        source = registry.create("model_source", str(config.model.name), config.model)
        base = source.load(dtype=trained_dtype(manifest))  # type: ignore[attr-defined]
    except FtframeError as exc:
        raise RunDirError(f"{folder.parent}: cannot load the base model of this run's adapter "
                          f"(model={config.model.name}): {exc}") from exc
    backend = _run_backend(registry, config, folder, "which loads its adapter")
    model = backend.tuned_model(base, folder, task)  # type: ignore[attr-defined]
    if model is None:  # the default of ftframe.api.Backend.tuned_model: a PEFT adapter, kept in fp32
        from peft import PeftModel

        model = PeftModel.from_pretrained(base.model, folder, autocast_adapter_dtype=True)
    tokenizer = base.tokenizer
    if (folder / "tokenizer_config.json").is_file():
        tokenizer = load_tokenizer(folder)
    return model, tokenizer, base.name, backend
