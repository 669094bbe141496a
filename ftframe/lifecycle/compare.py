"""What ``ftframe compare A B`` decides: both sides on the same examples, every task metric side by side with
paired bootstrap intervals, the examples that flipped, and whether B may replace A.

A side is a run dir (or ``models:/NAME@alias``), an ``ftframe eval`` output folder (predictions only), a
provider model (``BACKEND:MODEL_ID``, e.g. ``openai:gpt-4.1-mini``), or one variant of a request log.

Which examples: with ``--data FILE`` the file's examples (each side's saved predictions where they cover
exactly those examples, else the side is evaluated on the file through ``ftframe eval`` / the provider's
predictor). Without it, the sides' saved test predictions when both hold them on the same examples (same
prompts and gold answers, i.e. the same test split); a provider model answers the run's examples. Runs
saved on different test splits are refused: one may have trained on the other's test examples.

The task, metrics and gate come from A (the champion defines what "better" means); B must be a run of the
same task (type and label set). The verdict refuses B when B fails the task's gate on these examples,
when B is significantly worse on the primary metric (the interval of B − A below zero), when a
``--max-loss`` check fails, when a ``--require`` threshold is missed, or with ``--require-improvement``
when B is not significantly better.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ftframe.api import Example, Metric, MetricContext, Prediction, TaskInfo
from ftframe.lifecycle import LifecycleError
from ftframe.lifecycle.bootstrap import Delta, compute, paired_bootstrap
from ftframe.lifecycle.request_log import plain_messages

PREDICTION_FILES = {"": "predictions.jsonl", "golden_": "golden_predictions.jsonl"}
"""The saved predictions a run dir may hold, by prefix: on its test split and on its golden set."""


# ------------------------------------------------------------------------------------------- sides
@dataclass
class Side:
    """One system being compared."""

    label: str
    """``A`` (the champion) or ``B`` (the challenger)."""
    spec: str
    """As given on the command line."""
    kind: str
    """``run`` (can predict), ``eval`` (saved predictions only), ``provider`` or ``log``."""
    name: str
    run_dir: Path | None = None
    config: DictConfig | None = None
    task: TaskInfo | None = None
    saved: dict[str, list[Prediction]] = field(default_factory=dict)
    """Saved predictions by prefix (``""``: the test split, ``golden_``: the golden set)."""
    provider: tuple[str, str, dict[str, Any]] | None = None
    """``(backend, model id, options)`` of a provider model."""
    predictions: list[Prediction] | None = None
    """The predictions used in the comparison, aligned with the other side's."""
    source: str = ""
    """How these predictions were obtained (for the report)."""

    @property
    def can_predict(self) -> bool:
        return self.kind in ("run", "provider")


def prompt_key(prompt: Sequence[dict[str, Any]]) -> str:
    """Examples of two systems are matched by their prompt's roles and texts."""
    return json.dumps(plain_messages(prompt), sort_keys=True, ensure_ascii=False)


def example_keys(pairs: Sequence[tuple[Sequence[dict[str, Any]], str | None]]) -> list[str]:
    """One key per ``(prompt, gold)``; a repeated example gets ``#2``, ``#3``… so each occurrence pairs once."""
    seen: Counter[str] = Counter()
    out = []
    for prompt, gold in pairs:
        base = prompt_key(prompt) + "\x00" + (gold or "")
        seen[base] += 1
        out.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return out


def fingerprint(predictions: Sequence[Prediction]) -> str:
    """Which examples ``predictions`` answer (order-free): a SHA-256 of their prompts and gold answers."""
    keys = sorted(example_keys([(p.prompt, p.gold) for p in predictions]))
    return hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()


def read_predictions(path: Path) -> list[Prediction]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(Prediction.from_record(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise LifecycleError(f"{path}:{n}: not a prediction record ({type(exc).__name__}: {exc}); the run "
                                 f"dir is damaged.") from None
    return rows


PROVIDER_SPEC = re.compile(r"^(?P<backend>[a-z][a-z0-9_]*):(?P<model>[^/\\].*)$")


def open_side(label: str, spec: str, registry: Any, *, provider_options: dict[str, Any] | None = None,
              registry_uri: str | None = None) -> Side:
    """The side named by ``spec`` (see the module docstring); a clear error when it is none of them."""
    from ftframe.engine.saved_run import read_run_dir, saved_task, weights_folder
    from ftframe.lifecycle.registry import is_model_uri, resolve_model_uri

    shown = spec
    path = Path(spec)
    if is_model_uri(spec):
        resolved = resolve_model_uri(spec, registry_uri=registry_uri)
        path, shown = resolved.run_dir, f"{spec} (version {resolved.version})"
    elif not path.exists():
        m = PROVIDER_SPEC.match(spec)
        if m and m.group("backend") in registry.names("backend"):
            return _provider_side(label, spec, m.group("backend"), m.group("model"), registry, provider_options or {})
        backends = [n for n in registry.names("backend") if getattr(registry.get("backend", n), "kind", "") == "remote"]
        raise LifecycleError(f"{label} = {spec}: no such run dir, and not a registry URI (models:/NAME@alias) or a "
                             f"provider model (BACKEND:MODEL_ID with BACKEND one of {', '.join(backends) or 'none'}).")
    if not (path / "manifest.json").is_file():
        raise LifecycleError(f"{label} = {spec}: not a run dir (no manifest.json); pass the folder a job or "
                             f"`ftframe eval` wrote.")
    run_dir, config, manifest = read_run_dir(path)
    saved = {prefix: read_predictions(run_dir / name) for prefix, name in PREDICTION_FILES.items()
             if (run_dir / name).is_file()}
    kind = "eval" if manifest.get("kind") == "eval" else "run"
    if kind == "run" and not any(weights_folder(run_dir, manifest, k) for k in ("adapter", "merged")):
        kind = "eval"  # no weights to evaluate again (e.g. a provider-trained run): its saved predictions only
    return Side(label=label, spec=spec, kind=kind, name=shown, run_dir=run_dir, config=config,
                task=saved_task(run_dir, config), saved=saved)


def _provider_side(label: str, spec: str, backend: str, model: str, registry: Any,
                   options: dict[str, Any]) -> Side:
    cls = registry.get("backend", backend)
    if getattr(cls, "kind", "") != "remote":
        raise LifecycleError(f"{label} = {spec}: backend {backend!r} trains locally; a provider model is "
                             f"BACKEND:MODEL_ID with a provider backend (e.g. openai:gpt-4.1-mini).")
    registry.create("backend", backend, {"model": model, **options})  # its options are checked here, before any work
    return Side(label=label, spec=spec, kind="provider", name=f"{model} ({backend})",
                provider=(backend, model, dict(options)))


def check_same_task(a: Side, b: Side) -> TaskInfo:
    """The shared task; different task types, names or label sets are refused."""
    if a.task is None and b.task is None:
        raise LifecycleError("Neither side is a run dir: one must be (its task, metrics and gate define the "
                             "comparison), e.g. ftframe compare RUN_DIR openai:MODEL_ID.")
    if a.task is None or b.task is None:
        return a.task or b.task  # type: ignore[return-value]
    ta, tb = a.task, b.task
    problems = []
    if ta.type != tb.type:
        problems.append(f"A is a {ta.type} task, B a {tb.type} task")
    if ta.name != tb.name:
        problems.append(f"A is task {ta.name!r}, B task {tb.name!r}")
    if (ta.labels or tb.labels) and set(ta.labels or []) != set(tb.labels or []):
        only_a = sorted(set(ta.labels or []) - set(tb.labels or []))
        only_b = sorted(set(tb.labels or []) - set(ta.labels or []))
        problems.append(f"their label sets differ (only in A: {only_a or 'none'}; only in B: {only_b or 'none'})")
    if problems:
        raise LifecycleError(f"Cannot compare {a.name} with {b.name}: {'; '.join(problems)}. Compare runs of one "
                             f"task, trained on the same label set.")
    return ta


# ------------------------------------------------------------------------------------------ pairing
def load_examples(path: Path, registry: Any) -> list[Example]:
    """The examples of ``--data FILE`` (format detected as ``ftframe eval ... data=FILE`` does)."""
    from ftframe.engine.data_source import load_data

    if not path.exists():
        raise LifecycleError(f"--data {path}: no such file. Pass the golden set (or test file) both sides are "
                             f"evaluated on.")
    loaded, _ = load_data(OmegaConf.create({"name": "auto", "path": str(path)}), registry, registry.pm, "--data")
    if loaded.rejected:
        raise LifecycleError(f"--data {path}: {len(loaded.rejected)} rows rejected (first: {loaded.rejected[0].source}: "
                             f"{loaded.rejected[0].reason}); a golden set must be clean.")
    if not loaded.examples:
        raise LifecycleError(f"--data {path}: no examples in it.")
    return loaded.examples


def examples_from(predictions: Sequence[Prediction]) -> list[Example]:
    """The examples ``predictions`` answer (their prompt plus the gold answer), for the other side to answer."""
    return [Example(messages=[*p.prompt, *([{"role": "assistant", "content": p.gold}] if p.gold is not None else [])],
                    source=p.source) for p in predictions]


def _matching(side: Side, target: str) -> tuple[str, list[Prediction]] | None:
    for prefix, preds in side.saved.items():
        if preds and fingerprint(preds) == target:
            return prefix, preds
    return None


def pair_up(a: Side, b: Side, *, data: Path | None, out: Path, registry: Any,
            predict: Callable[[Side, Path | None, list[Example], Path], list[Prediction]]) -> str:
    """Fill ``a.predictions`` and ``b.predictions`` with predictions on the same examples, aligned; returns
    a sentence saying which examples (for the report). ``predict(side, file, examples, out)`` evaluates a side."""
    if data is not None:
        examples = load_examples(data, registry)
        target = fingerprint([Prediction(i, ex.prompt, ex.target, "") for i, ex in enumerate(examples)])
        for side in (a, b):
            found = _matching(side, target)
            if found is not None:
                side.predictions, side.source = found[1], f"saved {PREDICTION_FILES[found[0]]}"
            elif side.can_predict:
                side.predictions, side.source = predict(side, data, examples, out), f"evaluated on {data}"
            else:
                raise LifecycleError(f"{side.label} = {side.name} holds predictions only, none on {data}'s examples; "
                                     f"evaluate its model on {data} first (ftframe eval RUN data={data}) and "
                                     f"compare that output folder.")
        how = f"{len(examples)} examples of {data}"
    else:
        how = _pair_saved(a, b, out, predict)
    a.predictions, b.predictions = align(a.predictions or [], b.predictions or [])
    return how


def _pair_saved(a: Side, b: Side, out: Path,
                predict: Callable[[Side, Path | None, list[Example], Path], list[Prediction]]) -> str:
    sa, sb = a.saved.get(""), b.saved.get("")
    if sa and sb:
        if fingerprint(sa) != fingerprint(sb):
            raise LifecycleError(
                f"A ({a.name}) and B ({b.name}) hold test predictions on different examples (their test splits "
                f"differ, e.g. another seed, split or data file); one may have trained on the other's test "
                f"examples. Pass --data GOLDEN, a file held out from both, to evaluate both on it.")
        a.predictions, b.predictions = sa, sb
        a.source = b.source = "saved predictions.jsonl"
        digest = fingerprint(sa)[:12]
        return f"the {len(sa)} test examples both runs were evaluated on (same examples, sha256 {digest}…)"
    have, other = (a, b) if sa else (b, a) if sb else (None, None)
    if have is None or other is None:
        raise LifecycleError("Neither side holds saved test predictions: pass --data GOLDEN to evaluate both on it.")
    if other.kind != "provider":
        raise LifecycleError(f"{other.label} = {other.name} has no saved test predictions; pass --data GOLDEN to "
                             f"evaluate both sides on the same file.")
    have.predictions, have.source = have.saved[""], "saved predictions.jsonl"
    other.predictions = predict(other, None, examples_from(have.saved[""]), out)
    other.source = f"answered {have.label}'s test examples"
    return f"the {len(have.saved[''])} test examples of {have.label} ({have.name}), answered by {other.name}"


def align(a: Sequence[Prediction], b: Sequence[Prediction]) -> tuple[list[Prediction], list[Prediction]]:
    """Both lists in A's order, restricted to the examples both answered (matched by prompt and gold)."""
    kb = dict(zip(example_keys([(p.prompt, p.gold) for p in b]), b))
    pairs = [(p, kb[k]) for k, p in zip(example_keys([(p.prompt, p.gold) for p in a]), a) if k in kb]
    if not pairs:
        raise LifecycleError("A and B share no example (no prompt with the same gold answer in both).")
    return [p for p, _ in pairs], [q for _, q in pairs]


# --------------------------------------------------------------------------------------------- gates
@dataclass
class Check:
    """One condition on the comparison; ``passed`` False refuses B."""

    name: str
    passed: bool
    detail: str


GAIN_RE = re.compile(r"^(?P<key>[^=]+)=(?P<margin>[0-9.eE+-]+)$")
REQUIRE_RE = re.compile(r"^(?P<key>[^<>=]+)(?P<op>>=|<=)(?P<value>[0-9.eE+-]+)$")


def parse_max_loss(specs: Sequence[str]) -> list[tuple[str, float]]:
    out = []
    for spec in specs:
        m = GAIN_RE.match(spec.replace(" ", ""))
        if not m:
            raise LifecycleError(f"--max-loss {spec!r}: expected QUANTITY=MARGIN, e.g. macro_f1=0.01 or "
                                 f"per_class=0.01 (every class's F1).")
        out.append((m.group("key"), float(m.group("margin"))))
    return out


def parse_require(specs: Sequence[str]) -> list[tuple[str, str, float]]:
    out = []
    for spec in specs:
        m = REQUIRE_RE.match(spec.replace(" ", ""))
        if not m:
            raise LifecycleError(f"--require {spec!r}: expected NAME>=VALUE or NAME<=VALUE, e.g. macro_f1>=0.6 or "
                                 f"preference_ci_low>=0.5.")
        out.append((m.group("key"), m.group("op"), float(m.group("value"))))
    return out


def loss_checks(deltas: Sequence[Delta], max_loss: Sequence[tuple[str, float]], *, strict: bool) -> list[Check]:
    """``--max-loss KEY=MARGIN``: B may lose at most MARGIN on KEY (a quantity, or a ``per_*`` group: each
    of its rows); on the point estimate, or with ``strict`` on the interval's pessimistic end."""
    checks = []
    for key, margin in max_loss:
        chosen = [d for d in deltas if d.name == key or (key.startswith("per_") and d.name.startswith(f"{key}["))]
        if not chosen:
            raise LifecycleError(f"--max-loss {key}: no such quantity in this comparison; choose from "
                                 f"{', '.join(sorted({d.name.split('[')[0] for d in deltas}))}.")
        for d in chosen:
            gain = d.worst_gain if strict else d.gain
            if d.higher_is_better is None:
                raise LifecycleError(f"--max-loss {d.name}: which direction is better is unknown for this value; "
                                     f"gate a metric's headline value or a per_* F1.")
            lost = -(gain or 0.0)
            ok = lost <= margin + 1e-12
            what = "at the interval's worst end" if strict else "point estimate"
            checks.append(Check(f"max loss {d.name}", ok, f"B loses {max(lost, 0.0):.4f} ({what}); allowed {margin}"))
    return checks


def require_checks(values: dict[str, float], require: Sequence[tuple[str, str, float]]) -> list[Check]:
    checks = []
    for key, op, bound in require:
        value = values.get(key)
        ok = value is not None and (value >= bound if op == ">=" else value <= bound)
        shown = "missing" if value is None else f"{value:.4f}"
        checks.append(Check(f"require {key}{op}{bound}", ok, f"B's {key} = {shown}"))
    return checks


# ------------------------------------------------------------------------------------------ analysis
@dataclass
class Comparison:
    a: Side
    b: Side
    task: TaskInfo
    paired_on: str
    primary: str
    deltas: list[Delta]
    costly: dict[str, dict[str, Any]]
    """Metrics scored once, B against A (``in_loop = False``, e.g. a judge's preference)."""
    flips: list[dict[str, Any]]
    agreement: float
    checks: list[Check]
    task_gate: dict[str, Any]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]

    def delta(self, name: str) -> Delta | None:
        return next((d for d in self.deltas if d.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {"a": {"spec": self.a.spec, "name": self.a.name, "predictions": self.a.source},
                "b": {"spec": self.b.spec, "name": self.b.name, "predictions": self.b.source},
                "task": {"name": self.task.name, "type": self.task.type, "labels": self.task.labels},
                "paired_on": self.paired_on, "examples": len(self.a.predictions or []), "primary": self.primary,
                "deltas": [d.to_json() for d in self.deltas], "costly": self.costly, "agreement": self.agreement,
                "flips": len(self.flips), "checks": [c.__dict__ for c in self.checks], "task_gate": self.task_gate,
                "accepted": self.accepted, "reasons": self.reasons, "settings": self.settings, "notes": self.notes,
                "files": self.files}


def metric_plugins(cfg: DictConfig, registry: Any) -> dict[str, Metric]:
    return {name: registry.create("metric", name, opts) for name, opts in cfg.metrics.items()}  # type: ignore[misc]


def flipped(a: Sequence[Prediction], b: Sequence[Prediction], metric_name: str, metric: Metric,
            task: TaskInfo) -> list[dict[str, Any]]:
    """Examples whose score on the primary metric (the metric on that one example) differs between A and B,
    regressions first, largest change first."""
    out = []
    for i, (pa, pb) in enumerate(zip(a, b)):
        if pa.predicted.strip() == pb.predicted.strip():
            continue
        sa = compute(metric, [pa], task).values.get(metric_name)
        sb = compute(metric, [pb], task).values.get(metric_name)
        if sa is None or sb is None or sa == sb:
            continue
        better = (sb > sa) == metric.higher_is_better
        user = next((m.get("content") for m in reversed(pa.prompt) if m.get("role") == "user"), "")
        out.append({"example": i, "source": pa.source, "prompt": user, "gold": pa.gold, "a": pa.predicted,
                    "b": pb.predicted, "a_score": sa, "b_score": sb, "change": "improved" if better else "regressed"})
    out.sort(key=lambda r: (r["change"] != "regressed", -abs(r["b_score"] - r["a_score"])))
    return out


def analyse(a: Side, b: Side, task: TaskInfo, cfg: DictConfig, registry: Any, *, paired_on: str, out: Path,
            resamples: int, confidence: float, seed: int, max_loss: Sequence[tuple[str, float]] = (),
            require: Sequence[tuple[str, str, float]] = (), strict: bool = False,
            require_improvement: bool = False, progress: Callable[[str, int], Any] | None = None) -> Comparison:
    """Bootstrap every cheap metric (paired), score the costly ones once (B against A), find the flipped
    examples, and apply the gates (see the module docstring)."""
    from contextlib import nullcontext

    from ftframe.engine.evaluate import score_predictions
    from ftframe.engine.run import apply_gate

    bar = progress or (lambda description, total: nullcontext(None))
    pa, pb = a.predictions or [], b.predictions or []
    metrics = metric_plugins(cfg, registry)
    cheap = {n: m for n, m in metrics.items() if m.in_loop}
    costly_metrics = {n: m for n, m in metrics.items() if not m.in_loop}
    gold = [i for i, p in enumerate(pa) if p.gold is not None]
    notes = []
    deltas: list[Delta] = []
    if cheap and gold:
        ga, gb = [pa[i] for i in gold], [pb[i] for i in gold]
        if len(gold) < len(pa):
            notes.append(f"{len(pa) - len(gold)} of {len(pa)} examples have no gold answer: the metrics use the "
                         f"other {len(gold)}.")
        with bar(f"paired bootstrap ({resamples} resamples, {len(ga)} examples)", resamples) as advance:
            deltas = paired_bootstrap(ga, gb, cheap, task, resamples=resamples, confidence=confidence, seed=seed,
                                      progress=advance)
    elif not costly_metrics:
        raise LifecycleError("Nothing to compare on: no example has a gold answer and the task has no comparative "
                             "metric (a judge's preference). Pass --data GOLDEN with gold answers for these prompts.")
    else:
        notes.append("No example has a gold answer: only the comparative metrics were computed (pass --data GOLDEN).")
    costly: dict[str, dict[str, Any]] = {}
    for name, metric in costly_metrics.items():
        ctx = MetricContext(run_dir=out, prefix="compare_", baseline=list(pa), registry=registry)
        scored = score_predictions(list(pb), {name: metric}, task, ctx)
        costly[name] = {"values": scored["values"], "details": scored["details"].get(name, {})}
    primary = str(cfg.task.primary_metric)
    owner = next((n for n, m in cheap.items() if n == primary), None) or next(
        (d.metric for d in deltas if d.name == primary), None)
    flips = flipped([pa[i] for i in gold], [pb[i] for i in gold], primary, cheap[owner], task) if owner else []
    agreement = sum(x.predicted.strip() == y.predicted.strip() for x, y in zip(pa, pb)) / max(len(pa), 1)
    b_values = {d.name: d.b for d in deltas if d.b is not None}
    for info in costly.values():
        b_values.update({k: v for k, v in info["values"].items() if isinstance(v, int | float)})
    lower = {n for n, m in metrics.items() if not m.higher_is_better}
    task_gate = apply_gate(dict(cfg.gate), b_values, lower) if deltas or costly else {"passed": True, "checks": {}}
    checks = [Check("task gate (B)", bool(task_gate["passed"]),
                    ", ".join(f"{k} = {_fmt(c['value'])} ({'min' if 'min' in c else 'max'} "
                              f"{c.get('min', c.get('max'))})" for k, c in task_gate["checks"].items())
                    or "no thresholds configured")]
    head = next((d for d in deltas if d.name == primary), None)
    if head is not None:
        checks.append(Check(f"B not significantly worse on {primary}", head.verdict != "B worse",
                            f"Δ {head.delta:+.4f}, {confidence:.0%} CI [{head.low:+.4f}, {head.high:+.4f}]"))
        if require_improvement:
            checks.append(Check(f"B significantly better on {primary}", head.verdict == "B better",
                                f"{confidence:.0%} CI [{head.low:+.4f}, {head.high:+.4f}]"))
    elif require_improvement or max_loss:
        raise LifecycleError(f"No {primary} comparison (no gold answers): --max-loss/--require-improvement need "
                             f"the task metrics; pass --data GOLDEN.")
    checks += loss_checks(deltas, max_loss, strict=strict)
    checks += require_checks(b_values, require)
    settings = {"resamples": resamples, "confidence": confidence, "seed": seed, "strict": strict,
                "max_loss": [f"{k}={v}" for k, v in max_loss], "require": [f"{k}{o}{v}" for k, o, v in require],
                "require_improvement": require_improvement}
    return Comparison(a=a, b=b, task=task, paired_on=paired_on, primary=primary, deltas=deltas, costly=costly,
                      flips=flips, agreement=agreement, checks=checks, task_gate=task_gate, settings=settings,
                      notes=notes)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "—" if value is None else str(value)


# ---------------------------------------------------------------------------------- evaluating a side
def reference_config(a: Side, b: Side) -> DictConfig:
    """A's config (else B's): the task, metrics and gate of the comparison."""
    cfg = a.config if a.config is not None else b.config
    assert cfg is not None  # check_same_task refused two sides without a run dir
    return cfg


def evaluate_side(side: Side, data: Path | None, examples: list[Example], out: Path, *, cfg: DictConfig,
                  registry: Any, task: TaskInfo) -> list[Prediction]:
    """``side``'s predictions on ``examples``: a run dir through ``ftframe eval RUN data=FILE``, a provider
    model through its backend's predictor (:meth:`ftframe.api.Backend.baseline`) with the task's metrics."""
    folder = out / f"eval_{side.label}"
    if side.kind == "run":
        from ftframe.commands import eval as eval_command

        assert data is not None and side.run_dir is not None
        eval_command.run(argparse.Namespace(target=str(side.run_dir), overrides=[f"data={data}"], out=str(folder),
                                            limit=None))
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("status") not in ("succeeded", "gate_failed"):
            raise LifecycleError(f"evaluating {side.label} = {side.name} on {data} failed; see {folder}.")
        return read_predictions(folder / "predictions.jsonl")
    if side.kind != "provider" or side.provider is None:
        raise LifecycleError(f"{side.label} = {side.name} cannot be evaluated (no model to run).")
    return _evaluate_provider(side, data, examples, folder, cfg=cfg, registry=registry, task=task)


def _evaluate_provider(side: Side, data: Path | None, examples: list[Example], folder: Path, *, cfg: DictConfig,
                       registry: Any, task: TaskInfo) -> list[Prediction]:
    from ftframe.engine.job import TrainJob
    from ftframe.engine.offline_eval import evaluate_model

    assert side.provider is not None
    backend_name, model, options = side.provider
    spec: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    spec["backend"] = {"name": backend_name, "model": model, **options}
    spec["eval"] = {**spec["eval"], "mode": "generate", "val_mode": None}  # a chat endpoint has no label scores
    run_cfg = OmegaConf.create(spec)
    backend = registry.create("backend", backend_name, run_cfg.backend)
    job = TrainJob(config=run_cfg, model_source=registry.create("model_source", str(run_cfg.model.name), run_cfg.model),
                   train=[], val=[], task=task, metrics={}, run_dir=folder, seed=int(run_cfg.seed),
                   trainer_config=run_cfg.trainer, eval_config=run_cfg.eval, pm=registry.pm)
    predictor = backend.baseline(job)  # type: ignore[attr-defined]
    evaluate_model(run_cfg, predictor, examples, folder, registry=registry, task=task,
                   source={"provider": backend_name, "model": model, "data": str(data) if data else "A's examples"})
    return read_predictions(folder / "predictions.jsonl")


# ---------------------------------------------------------------------------------------- request log
def sides_from_log(log: Path, registry: Any, *, config_spec: str | None, data: Path | None,
                   registry_uri: str | None = None) -> tuple[Side, Side, str]:
    """Champion (A) and challenger (B) answers on the same logged requests (shadow mode, content logged),
    with gold answers from ``data`` where a golden example has the same prompt (compared after redacting
    the golden prompts as the log was). The task comes from ``config_spec`` (a run dir or ``models:/``
    URI), else from where the log says the champion was loaded from."""
    from ftframe.lifecycle.request_log import read_request_log
    from ftframe.transforms.pii import redact

    records = read_request_log(log).records
    pairs = []
    for rec in records:
        champ, chall = rec.answer("champion"), rec.answer("challenger")
        if rec.messages and champ and chall and champ.ok and chall.ok and champ.text is not None \
                and chall.text is not None:
            pairs.append((rec, champ, chall))
    if not pairs:
        raise LifecycleError(f"{log}: no request has both a champion and a challenger answer with its content "
                             f"({len(records)} records). Serve with --shadow and content logging on, then compare.")
    spec = config_spec or pairs[0][1].model
    try:
        ref = open_side("A", spec, registry, registry_uri=registry_uri)
    except LifecycleError as exc:
        raise LifecycleError(f"{log}: the champion was loaded from {spec!r}, which gives no task here ({exc}). Name "
                             f"the champion's run dir or models:/ URI: ftframe compare --log {log} RUN.") from None
    gold: dict[str, str | None] = {}
    if data is not None:
        for ex in load_examples(data, registry):
            prompt = [{"role": m["role"], "content": redact(m["content"])[0]} for m in plain_messages(ex.prompt)]
            gold.setdefault(prompt_key(prompt), ex.target)
    a_preds, b_preds = [], []
    for i, (rec, champ, chall) in enumerate(pairs):
        g = gold.get(prompt_key(rec.messages or []))
        a_preds.append(Prediction(i, rec.messages or [], g, champ.text or "", rec.where))
        b_preds.append(Prediction(i, rec.messages or [], g, chall.text or "", rec.where))
    matched = sum(p.gold is not None for p in a_preds)
    a = Side(label="A", spec=str(log), kind="log", name=f"champion ({pairs[0][1].model})", run_dir=ref.run_dir,
             config=ref.config, task=ref.task, predictions=a_preds, source=f"champion answers in {log}")
    b = Side(label="B", spec=str(log), kind="log", name=f"challenger ({pairs[0][2].model})", config=ref.config,
             task=ref.task, predictions=b_preds, source=f"challenger answers in {log}")
    how = (f"{len(pairs)} requests of {log} answered by both" +
           (f", {matched} with a gold answer from {data}" if data is not None else ", without gold answers"))
    return a, b, how
