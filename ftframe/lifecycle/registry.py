"""Promotion through MLflow's Model Registry, and ``models:/NAME@alias`` back to a run dir.

``promote(run_dir, name)`` registers a finished run as a new version of the registered model ``name``: an
MLflow run (experiment ``ftframe-registry``) holds the run's artefact — its exported weights
(``adapter/``, ``merged/``... as the manifest lists them), ``config.yaml``, ``manifest.json``,
``metrics.json``, its predictions and data splits — as the artifact folder ``run/``, the test metrics as
MLflow metrics, and the version points at that folder. Then the alias (``champion``) moves to it; the
version remembers which version the alias pointed at before (tag ``ftframe.previous.<alias>``), so a
rollback moves the alias back.

Nothing is half-registered: what a promotion created (registered model, MLflow run and its artifacts,
model version) is deleted again when a later step fails, and a refused promotion creates nothing.

``resolve_model_uri("models:/NAME@alias")`` (or ``models:/NAME/VERSION``) downloads that version's
artefact once into ``$FTFRAME_CACHE_DIR/registry/<run id>/`` and returns it: a run dir that
``load_saved_run`` — hence ``ftframe serve``/``eval``/``compare`` — reads like any other.

Store: ``--registry URI``, else ``$MLFLOW_TRACKING_URI``, else a local SQLite file
``outputs/registry/mlflow.db`` with artifacts in ``outputs/registry/artifacts/`` (MLflow's registry needs a
database store: sqlalchemy and alembic, in the ``trackers`` extra).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftframe.lifecycle import LifecycleError, PromotionRefused

EXPERIMENT = "ftframe-registry"
DEFAULT_STORE = Path("outputs") / "registry" / "mlflow.db"
ARTIFACT_DIR = "run"
"""The artifact folder of a registered version: a run dir."""
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")
ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
PREVIOUS = "ftframe.previous."
"""Version tag prefix: ``ftframe.previous.<alias>`` = the version the alias pointed at before this one."""
RUN_FILES = ("config.yaml", "manifest.json", "metrics.json", "MODEL_CARD.md", "preflight.json", "predictions.jsonl",
             "baseline_predictions.jsonl", "golden_predictions.jsonl", "baseline_golden_predictions.jsonl")
RUN_FOLDERS = ("data",)
"""Besides the exports: what a registered version keeps of its run dir (checkpoints and logs are left)."""


def is_model_uri(spec: str) -> bool:
    return spec.startswith("models:/")


def parse_model_uri(uri: str) -> tuple[str, str | None, int | None]:
    """``(name, alias, version)`` of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    m = MODEL_URI.match(uri)
    if not m:
        raise LifecycleError(f"{uri}: expected models:/NAME@ALIAS (e.g. models:/triage@champion) or "
                             f"models:/NAME/VERSION.")
    return m.group("name"), m.group("alias"), int(m.group("version")) if m.group("version") else None


def registry_uri(uri: str | None = None) -> str:
    """The store: ``uri``, else ``$MLFLOW_TRACKING_URI``, else the local SQLite file (see the module docstring)."""
    chosen = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if chosen:
        return chosen
    return f"sqlite:///{DEFAULT_STORE.resolve()}"


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def open_client(uri: str | None = None) -> Any:
    """An ``MlflowClient`` on the store, checked to answer; an unreachable one is a clear error."""
    uri = registry_uri(uri)
    if uri.startswith(("http://", "https://")):
        # MLflow's default is 7 retries with exponential backoff (minutes) before a dead server is reported.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    db = _sqlite_path(uri)
    if db is not None:
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LifecycleError(f"registry {uri}: cannot create {db.parent} ({exc.strerror}).") from None
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise LifecycleError("The model registry needs MLflow: pip install 'ftframe[trackers]' (mlflow-skinny, "
                             "sqlalchemy, alembic).") from None
    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_registered_models(max_results=1)
    except Exception as exc:  # noqa: BLE001 (MLflow raises many kinds: connection, HTTP, SQL, missing drivers)
        raise LifecycleError(f"registry {uri} is unreachable or not a model registry: {_short(exc)}. Check "
                             f"--registry / MLFLOW_TRACKING_URI (a database store or a tracking server).") from None
    client.ftframe_uri = uri  # type: ignore[attr-defined]
    return client


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def _missing(exc: BaseException) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST" or "RESOURCE_DOES_NOT_EXIST" in str(exc)


def registered_model(client: Any, name: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if _missing(exc):
            return None
        raise


def _names(client: Any) -> str:
    names = [m.name for m in client.search_registered_models(max_results=50)]
    return ", ".join(names) or "none"


def model_version(client: Any, name: str, *, alias: str | None = None, version: int | None = None) -> Any:
    """The version an alias (or number) names; a clear error when the model, alias or version is unknown."""
    from mlflow.exceptions import MlflowException

    model = registered_model(client, name)
    if model is None:
        raise LifecycleError(f"No registered model {name!r} in {client.ftframe_uri} (registered: {_names(client)}). "
                             f"Register one with ftframe promote RUN --name {name}.")
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if not _missing(exc) and "alias" not in str(exc).lower():
            raise
        aliases = ", ".join(f"{a} → v{v}" for a, v in sorted((model.aliases or {}).items())) or "none"
        what = f"alias {alias!r}" if alias is not None else f"version {version}"
        raise LifecycleError(f"Registered model {name!r} has no {what} (aliases: {aliases}).") from None


def _cache_root() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("FTFRAME_CACHE_DIR") or user_cache_dir("ftframe")) / "registry"


@dataclass
class ResolvedModel:
    uri: str
    name: str
    version: int
    run_id: str
    run_dir: Path
    """A local copy of the version's artefact: a run dir."""


def resolve_model_uri(uri: str, *, registry_uri: str | None = None, client: Any = None) -> ResolvedModel:
    """The run dir behind ``models:/NAME@alias`` or ``models:/NAME/VERSION`` (downloaded once, then cached)."""
    name, alias, version = parse_model_uri(uri)
    client = client or open_client(registry_uri)
    mv = model_version(client, name, alias=alias, version=version)
    dest = _cache_root() / (mv.run_id or hashlib.sha256(mv.source.encode()).hexdigest()[:32])
    if not (dest / "manifest.json").is_file():
        _download(client, mv, dest)
    return ResolvedModel(uri=uri, name=name, version=int(mv.version), run_id=mv.run_id, run_dir=dest)


def resolve_run_dir(spec: str, *, registry_uri: str | None = None) -> str:
    """``spec`` itself, or for a ``models:/`` URI the local run dir it names (what ``ftframe serve``/``eval``
    call on their run-dir argument)."""
    if not is_model_uri(spec):
        return spec
    return str(resolve_model_uri(spec, registry_uri=registry_uri).run_dir)


def _download(client: Any, mv: Any, dest: Path) -> None:
    """Download a version's artefact into ``dest`` atomically (a complete run dir or nothing)."""
    from mlflow.artifacts import download_artifacts

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        got = Path(download_artifacts(artifact_uri=mv.source, dst_path=str(tmp), tracking_uri=client.ftframe_uri))
        if not (got / "manifest.json").is_file():
            raise LifecycleError(f"models:/{mv.name}/{mv.version}: its artefact ({mv.source}) holds no manifest.json; "
                                 f"it was not registered by ftframe promote.")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(got, dest)
    except LifecycleError:
        raise
    except Exception as exc:  # noqa: BLE001 (artifact stores raise their own kinds)
        raise LifecycleError(f"models:/{mv.name}/{mv.version}: cannot download its artefact from {mv.source}: "
                             f"{_short(exc)}.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------- promote
def check_name(name: str, alias: str) -> None:
    if not name or any(c in name for c in "/@:") or name != name.strip():
        raise LifecycleError(f"--name {name!r}: a registered model name without '/', '@' or ':' (e.g. triage).")
    if not ALIAS.match(alias) or alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise LifecycleError(f"--alias {alias!r}: letters, digits, '_' and '-', not 'latest' or 'v<number>' "
                             f"(MLflow reserves them).")


def run_sha(run_dir: Path) -> str:
    """Identifies a run across copies: the SHA-256 of its manifest."""
    return hashlib.sha256((run_dir / "manifest.json").read_bytes()).hexdigest()


def artefact_paths(run_dir: Path, manifest: dict[str, Any]) -> list[Path]:
    """What a version keeps (relative to ``run_dir``): the exports inside the run dir, and :data:`RUN_FILES`,
    :data:`RUN_FOLDERS` where present."""
    rel: list[Path] = [Path(n) for n in (*RUN_FILES, *RUN_FOLDERS) if (run_dir / n).exists()]
    for entry in (manifest.get("exports") or {}).values():
        for p in (entry or {}).get("paths") or []:
            recorded = Path(p)
            parts = recorded.parts[1:] if recorded.is_absolute() else recorded.parts
            # the recorded path's longest tail inside run_dir (the dir may have moved), as saved_run does
            for i in range(len(parts)):
                if (run_dir.joinpath(*parts[i:])).exists():
                    rel.append(Path(*parts[i:]))
                    break
    return sorted(set(rel))


def _stage(run_dir: Path, paths: list[Path], into: Path) -> None:
    for rel in paths:
        src, dst = run_dir / rel, into / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)


def _listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


@dataclass
class Created:
    """What a promotion has created so far, undone in reverse order by :meth:`undo`."""

    client: Any
    name: str
    model: bool = False
    run_id: str | None = None
    artifacts: Path | None = None
    version: str | None = None
    cache: Path | None = None
    """The downloaded copy of the new version (checked against the run's files)."""

    def undo(self) -> list[str]:
        """Delete the version, the MLflow run (and its local artifacts), the registered model if it was new."""
        done = []
        steps: list[tuple[str, Callable[[], Any]]] = []
        if self.version is not None:
            steps.append((f"version {self.version}", lambda: self.client.delete_model_version(self.name, self.version)))
        if self.run_id is not None:
            steps.append((f"MLflow run {self.run_id}", lambda: self.client.delete_run(self.run_id)))
        for folder in (self.artifacts, self.cache):
            if folder is not None:
                steps.append((f"files {folder}", lambda folder=folder: shutil.rmtree(folder, ignore_errors=True)))
        if self.model:
            steps.append((f"registered model {self.name}", lambda: self.client.delete_registered_model(self.name)))
        for what, step in steps:
            try:
                step()
                done.append(what)
            except Exception as exc:  # noqa: BLE001 (report what could not be undone, then go on)
                done.append(f"{what} NOT deleted ({_short(exc)})")
        return done


@dataclass
class Promotion:
    name: str
    alias: str
    version: int
    previous: int | None
    run_id: str
    registry: str
    source: str
    compared: Any = None
    """The :class:`~ftframe.lifecycle.compare.Comparison` with the former champion, when one was made."""


def _experiment(client: Any) -> str:
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    db = _sqlite_path(client.ftframe_uri)
    location = (db.parent / "artifacts").as_uri() if db is not None else None
    return client.create_experiment(EXPERIMENT, artifact_location=location)


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def promote(run_dir: str | Path, name: str, *, alias: str = "champion", registry: str | None = None,
            compare: Callable[[Path], Any] | None = None, client: Any = None) -> Promotion:
    """Register ``run_dir`` as a new version of ``name`` and move ``alias`` to it.

    Refused (:class:`PromotionRefused`, nothing created) when the run did not pass its gate, or when
    ``compare(champion_run_dir)`` — called with the version ``alias`` points at now, if any — returns a
    comparison that is not ``accepted``.
    """
    from ftframe.engine.saved_run import RunDirError, read_run_dir, weights_folder
    from ftframe.lifecycle.compat import tokenizer_fingerprint

    check_name(name, alias)
    run_dir = Path(run_dir)
    try:
        run_dir, config, manifest = read_run_dir(run_dir)
    except RunDirError as exc:
        if "failed its gate" in str(exc):
            raise PromotionRefused(f"Not promoting {run_dir}: it failed its gate ({_gate_text(run_dir)}). Nothing was "
                                   f"registered.") from None
        raise
    if not (manifest.get("gate") or {}).get("passed", True):
        raise PromotionRefused(f"Not promoting {run_dir}: its gate did not pass. Nothing was registered.")
    kinds = [k for k in ("adapter", "merged") if weights_folder(run_dir, manifest, k) is not None]
    if not kinds:
        raise LifecycleError(f"{run_dir}: no exported weights (adapter/ or merged/) to register; rerun with the "
                             f"adapter or merged exporter.")
    client = client or open_client(registry)
    sha = run_sha(run_dir)
    model = registered_model(client, name)
    if model is not None:
        for mv in client.search_model_versions(f"name='{name}'"):
            if (mv.tags or {}).get("ftframe.run_sha") == sha:
                raise LifecycleError(f"{run_dir} is already registered as {name} version {mv.version}; move the alias "
                                     f"to it with: ftframe promote --name {name} --alias {alias} --to-version {mv.version}")
    champion = None
    if model is not None and alias in (model.aliases or {}):
        champion = client.get_model_version_by_alias(name, alias)
    compared = None
    if compare is not None and champion is not None:
        old = resolve_model_uri(f"models:/{name}/{champion.version}", client=client)
        compared = compare(old.run_dir)
        if not compared.accepted:
            raise PromotionRefused(f"Not promoting {run_dir}: against {name}@{alias} (version {champion.version}) "
                                   f"{'; '.join(compared.reasons)}. Nothing was registered; {alias} still points at "
                                   f"version {champion.version}.")
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")) if (run_dir / "metrics.json").is_file() else {}
    test = _numbers(((metrics.get("test") or {}).get("values")) or {})
    primary = str(config.task.primary_metric)
    tags = {"ftframe.run_dir": str(run_dir.resolve()), "ftframe.run_sha": sha, "ftframe.task": str(config.task.name),
            "ftframe.weights": ",".join(kinds), "ftframe.primary_metric": primary,
            "ftframe.tokenizer": tokenizer_fingerprint(run_dir) or "unknown"}
    if primary in test:
        tags[f"ftframe.{primary}"] = f"{test[primary]:.4f}"
    if champion is not None:
        tags[PREVIOUS + alias] = str(champion.version)
    if compared is not None:
        head = compared.delta(compared.primary)
        tags["ftframe.compared_with"] = (f"v{champion.version}: {compared.primary} Δ {head.delta:+.4f} "  # type: ignore[union-attr]
                                         f"[{head.low:+.4f}, {head.high:+.4f}]" if head else f"v{champion.version}")
    created = Created(client=client, name=name)
    try:
        if model is None:
            client.create_registered_model(name, description=f"ftframe task {config.task.name} (ftframe promote)")
            created.model = True
        run = client.create_run(_experiment(client), run_name=f"{name}: {run_dir.name}",
                                tags={"ftframe.run_dir": tags["ftframe.run_dir"], "ftframe.run_sha": sha})
        created.run_id = run.info.run_id
        _log_run(client, run.info.run_id, config, manifest, test)
        local = _local_path(run.info.artifact_uri)
        if local is not None:
            created.artifacts = local
        paths = artefact_paths(run_dir, manifest)
        with tempfile.TemporaryDirectory(prefix="ftframe-promote-") as tmp:
            _stage(run_dir, paths, Path(tmp))
            expected = _listing(Path(tmp))
            client.log_artifacts(run.info.run_id, tmp, ARTIFACT_DIR)
        client.set_terminated(run.info.run_id, "FINISHED")
        source = f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT_DIR}"
        mv = client.create_model_version(name, source, run_id=run.info.run_id, tags=tags,
                                         description=f"{run_dir} ({config.task.name}, {primary} "
                                                     f"{test.get(primary, float('nan')):.4f})")
        created.version = str(mv.version)
        got = resolve_model_uri(f"models:/{name}/{mv.version}", client=client)
        created.cache = got.run_dir
        if _listing(got.run_dir) != expected:
            raise LifecycleError(f"the registered artefact of version {mv.version} differs from the run's files")
        client.set_registered_model_alias(name, alias, mv.version)
    except BaseException as exc:
        undone = created.undo()
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise LifecycleError(f"Promoting {run_dir} as {name} failed ({_short(exc)}); undone: "
                             f"{', '.join(undone) or 'nothing had been created'}. "
                             f"{alias} is unchanged.") from None
    return Promotion(name=name, alias=alias, version=int(mv.version), previous=int(champion.version) if champion else None,
                     run_id=run.info.run_id, registry=client.ftframe_uri, source=source, compared=compared)


def _gate_text(run_dir: Path) -> str:
    try:
        gate = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8")).get("gate") or {}
    except (OSError, json.JSONDecodeError):
        return "see its manifest"
    failed = [f"{k} = {c.get('value')} (min {c.get('min')})" if "min" in c else f"{k} = {c.get('value')} (max {c.get('max')})"
              for k, c in (gate.get("checks") or {}).items() if not c.get("passed")]
    return ", ".join(failed) or "see its manifest"


def _local_path(artifact_uri: str) -> Path | None:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and artifact_uri.startswith("/"):
        return Path(artifact_uri)
    return None


def _log_run(client: Any, run_id: str, config: Any, manifest: dict[str, Any], test: dict[str, float]) -> None:
    import time

    from mlflow.entities import Metric, Param

    train = ((manifest.get("metrics") or {}).get("train")) or {}
    params = {"task": config.task.name, "task_type": config.task.type, "model": config.model.name,
              "backend": config.backend.get("name"), "seed": config.get("seed"), "base_model": train.get("base_model"),
              "git_commit": (manifest.get("git") or {}).get("commit")}
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(f"test/{k}", v, now, 0) for k, v in test.items()],
                     params=[Param(k, str(v)) for k, v in params.items() if v is not None])


# ---------------------------------------------------------------------------------- aliases, history
def move_alias(name: str, alias: str, *, version: int | None = None, registry: str | None = None,
               client: Any = None) -> tuple[int | None, int]:
    """Point ``alias`` at ``version``, or with ``version=None`` back at the version it pointed at before the
    current one (a rollback). Returns ``(from, to)``."""
    check_name(name, alias)
    client = client or open_client(registry)
    model = registered_model(client, name)
    if model is None:
        raise LifecycleError(f"No registered model {name!r} in {client.ftframe_uri} (registered: {_names(client)}).")
    current = client.get_model_version_by_alias(name, alias) if alias in (model.aliases or {}) else None
    if version is None:
        if current is None:
            raise LifecycleError(f"{name} has no alias {alias!r} to roll back.")
        previous = (current.tags or {}).get(PREVIOUS + alias)
        if not previous:
            raise LifecycleError(f"{name}@{alias} is version {current.version}, the first it pointed at: there is no "
                                 f"earlier version to roll back to (move it with --to-version N).")
        target = model_version(client, name, version=int(previous))
    else:
        target = model_version(client, name, version=version)
        if current is not None and str(current.version) != str(target.version):
            client.set_model_version_tag(name, str(target.version), PREVIOUS + alias, str(current.version))
    client.set_registered_model_alias(name, alias, target.version)
    return (int(current.version) if current is not None else None), int(target.version)


def versions(name: str, *, registry: str | None = None, client: Any = None) -> list[dict[str, Any]]:
    """Every version of ``name``: number, aliases, primary metric, source run dir, creation time."""
    from datetime import UTC, datetime

    client = client or open_client(registry)
    model = registered_model(client, name)
    if model is None:
        raise LifecycleError(f"No registered model {name!r} in {client.ftframe_uri} (registered: {_names(client)}).")
    by_version: dict[str, list[str]] = {}
    for a, v in (model.aliases or {}).items():
        by_version.setdefault(str(v), []).append(a)
    out = []
    for mv in sorted(client.search_model_versions(f"name='{name}'"), key=lambda m: int(m.version)):
        tags = mv.tags or {}
        primary = tags.get("ftframe.primary_metric", "")
        out.append({"version": int(mv.version), "aliases": sorted(by_version.get(str(mv.version), [])),
                    "primary": primary, "value": tags.get(f"ftframe.{primary}"), "run_dir": tags.get("ftframe.run_dir"),
                    "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(timespec="seconds"),
                    "compared_with": tags.get("ftframe.compared_with")})
    return out
