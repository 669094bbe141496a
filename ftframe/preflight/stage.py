"""Preflight as the run uses it and as ``ftframe data check`` uses it: transform and split the loaded data,
then build the report with the run's tokenizer, estimate time and cost, and handle over-long examples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ftframe.api import Example, LoadedData, Rejected
from ftframe.errors import DataError, FtframeError
from ftframe.io import write_json, write_jsonl
from ftframe.preflight import throughput
from ftframe.preflight.render import print_report, write_histogram
from ftframe.preflight.report import build_report, estimate
from ftframe.preflight.tool_render import tool_problem
from ftframe.transforms.examples import dedup, redact_examples, sample
from ftframe.transforms.long_examples import handle_too_long
from ftframe.transforms.split_files import make_splits

REPORT, HISTOGRAM = "preflight.json", "preflight_tokens.png"


def file_loader(cfg_data: DictConfig, registry: Any, pm: Any) -> Callable[[str, str], LoadedData]:
    """``load(path, key)`` reads another file with the data format and options of ``data`` (for
    ``split.files``); its path problems name ``key``."""
    from ftframe.engine.data_source import load_data

    def load(path: str, key: str = "data.path") -> LoadedData:
        node = OmegaConf.merge(cfg_data, {"path": str(path)})
        return load_data(node, registry, pm, key)[0]  # type: ignore[arg-type]

    return load


def prepare_data(cfg: DictConfig, loaded: LoadedData, load_file: Callable[[str], LoadedData]
                 ) -> tuple[dict[str, list[Example]], dict[str, Any]]:
    """Dedup and sample (``data.path``), split (by shares and ``split.files``), then redact PII in every split.
    Removed rows and the split files' rejects are appended to ``loaded.rejected``, files read to
    ``loaded.files``; returns the splits and what was done (for the manifest)."""
    t, info = cfg.transforms, {}
    examples = loaded.examples
    if t.dedup:
        examples, dropped = dedup(examples)
        loaded.rejected += dropped
        info["dedup"] = {"removed": len(dropped)}
    seed = int(cfg.split.seed if cfg.split.seed is not None else cfg.seed)
    if t.get("sample") is not None:
        info["sample"] = {"kept": min(int(t.sample), len(examples)), "of": len(examples), "seed": seed}
        examples = sample(examples, int(t.sample), seed)
    files = OmegaConf.to_container(cfg.split.files) if cfg.split.get("files") else {}
    splits, rejected, read, info["split"] = make_splits(
        examples, shares={"train": cfg.split.train, "val": cfg.split.val, "test": cfg.split.test},
        files=files, seed=seed, stratify=bool(cfg.split.stratify and cfg.task.type == "classification"),  # type: ignore[arg-type]
        load=load_file)
    loaded.rejected += rejected
    loaded.files += read
    if t.redact_pii:
        counts: dict[str, Any] = {"kinds": [], "replaced": {}, "examples_changed": 0}
        for name in splits:
            splits[name], found = redact_examples(splits[name], list(t.redact_pii))
            counts["kinds"] = found["kinds"]
            counts["examples_changed"] += found["examples_changed"]
            for k, v in found["replaced"].items():
                counts["replaced"][k] = counts["replaced"].get(k, 0) + v
        info["redact_pii"] = counts
    return splits, info


def model_key(cfg: DictConfig) -> str:
    """Names the model for throughput records: the source name, plus its path or id where it has one."""
    extra = cfg.model.get("path") or cfg.model.get("id") or ""
    return f"{cfg.model.name}:{extra}" if extra else str(cfg.model.name)


def provider_cost(backend: Any, billed_tokens_per_epoch: int, n_examples: int) -> dict[str, Any] | None:
    """``backend.estimate_cost(...)`` where the backend has one (provider backends), else None."""
    if not hasattr(backend, "estimate_cost"):
        return None
    try:
        return dict(backend.estimate_cost(billed_tokens_per_epoch=billed_tokens_per_epoch, n_examples=n_examples))
    except FtframeError as exc:
        return {"error": str(exc)}


def build(cfg: DictConfig, *, splits: dict[str, list[Example]], rejected: list[Rejected], tokenizer: Any,
          backend: Any, leak_level: str, info: dict[str, Any],
          measure: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """The full report including the estimate. ``measure(report)`` is asked for a throughput when no
    earlier run recorded one."""
    max_length = cfg.backend.get("max_length")
    report = build_report(splits=splits, rejected=rejected, tokenizer=tokenizer, max_length=max_length,
                          too_long=str(cfg.transforms.too_long), task_type=str(cfg.task.type), leak_level=leak_level,
                          info={**info, "tokenizer": getattr(tokenizer, "name_or_path", "") or str(cfg.model.name),
                                "model": model_key(cfg)})
    rate = throughput.recorded(model_key(cfg), str(cfg.backend.name))
    if rate is None and measure is not None:
        rate = measure(report)
    train = report["tokens"]["per_split"].get("train", {})
    epochs = cfg.backend.get("epochs")
    report["estimate"] = estimate(report, epochs=epochs if isinstance(epochs, int) else None, throughput=rate,
                                  cost=provider_cost(backend, int(train.get("tokens_within_max_length", 0)),
                                                     int(train.get("examples", 0))))
    return report


def write_report(out_dir: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    return write_json(out_dir / REPORT, report), write_histogram(out_dir / HISTOGRAM, report)


def write_rejected(run_dir: Path, rejected: list[Rejected]) -> None:
    write_jsonl(run_dir / "rejected.jsonl", [{"source": r.source, "kind": r.kind, "reason": r.reason, "raw": r.raw}
                                             for r in rejected])


def preflight_stage(cfg: DictConfig, run_dir: Path, con: Any, registry: Any, loaded: LoadedData,
                    splits: dict[str, list[Example]], manifest: dict[str, Any],
                    info: dict[str, Any]) -> dict[str, list[Example]]:
    """The run's preflight: report (``data_checks.preflight``) into the run dir, a leak stops the run unless
    ``data_checks.allow_leakage``; then over-long training examples are dropped or chunked as configured."""
    too_long = str(cfg.transforms.too_long)
    max_length = cfg.backend.get("max_length")
    if not cfg.data_checks.preflight and (too_long == "truncate" or not max_length):
        return splits
    model_source = registry.create("model_source", str(cfg.model.name), cfg.model)
    tokenizer = model_source.load_tokenizer()  # type: ignore[attr-defined]
    if cfg.data_checks.preflight:
        backend = registry.create("backend", str(cfg.backend.name), cfg.backend)
        leak_level = "warning" if cfg.data_checks.allow_leakage else "error"
        report = build(cfg, splits=splits, rejected=loaded.rejected, tokenizer=tokenizer, backend=backend,
                       leak_level=leak_level, info=info)
        paths = write_report(run_dir, report)
        print_report(con, report)
        con.print(f"preflight report: {paths[0]} and {paths[1]}")
        manifest["preflight"] = {"problems": report["problems"], "estimate": report["estimate"]}
        leaks = [p for p in report["problems"] if p["level"] == "error" and p["message"].startswith("train/test")]
        if leaks:
            raise DataError(f"{leaks[0]['message']}. Details in {paths[0]}.")
        lost = tool_problem(report["tools"])
        if lost:
            raise DataError(f"{lost['message']}. Details in {paths[0]}.")
    if too_long != "truncate" and max_length:
        kept, dropped, long_info = handle_too_long(tokenizer, splits["train"], int(max_length), too_long,
                                                   int(cfg.transforms.chunk_overlap))
        splits = {**splits, "train": kept}
        manifest.setdefault("transforms", {})["too_long"] = long_info
        if dropped:
            loaded.rejected += dropped
            write_rejected(run_dir, loaded.rejected)
            con.print(f"[yellow]{len(dropped)} training example(s) over max_length={max_length} dropped[/] "
                      f"(listed in {run_dir / 'rejected.jsonl'})")
        if long_info["chunked"]:
            con.print(f"{long_info['chunked']} training example(s) over max_length={max_length} split into "
                      f"{long_info['chunks']} chunks")
    return splits
