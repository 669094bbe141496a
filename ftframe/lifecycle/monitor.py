"""Health and drift from a request log (``ftframe monitor LOG --against RUN``), and golden-set candidates.

Reported: requests by route and by the variant that answered; latency p50/p95/p99 of every variant's
answers (served and shadow); the client-facing status codes and error codes; the error rate (requests
answered 5xx or 429: failures and overload, not malformed requests); prompt lengths against the
training maximum; and the drift score (:mod:`ftframe.lifecycle.drift`) between served prompts (needs
content logging) and the run's training prompts.

The training maximum: the run's ``backend.max_length`` (what training cut examples to), else the
longest training conversation in its ``preflight.json``.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftframe.lifecycle import LifecycleError
from ftframe.lifecycle.drift import DriftResult, drift_score, prompt_text
from ftframe.lifecycle.request_log import RequestRecord, plain_messages


def percentiles(values: list[float]) -> dict[str, float | None]:
    import numpy as np

    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    arr = np.asarray(values, dtype=float)
    return {"n": len(values), "p50": round(float(np.percentile(arr, 50)), 1),
            "p95": round(float(np.percentile(arr, 95)), 1), "p99": round(float(np.percentile(arr, 99)), 1),
            "max": round(float(arr.max()), 1)}


def failed(rec: RequestRecord) -> bool:
    """A failure of the service (5xx) or an overload refusal (429); a malformed request (other 4xx) is not."""
    return rec.status >= 500 or rec.status == 429


@dataclass
class TrainingSide:
    """What the log is checked against: the run's training prompts and its maximum length."""

    run_dir: Path
    prompts: list[str]
    max_tokens: int | None
    max_from: str


def training_side(spec: str, *, registry_uri: str | None = None) -> TrainingSide:
    """The run dir (or ``models:/`` URI) ``spec``'s training prompts and training maximum length."""
    from ftframe.engine.saved_run import read_run_dir
    from ftframe.lifecycle.registry import resolve_run_dir

    run_dir, config, _ = read_run_dir(resolve_run_dir(spec, registry_uri=registry_uri))
    train = run_dir / "data" / "train.jsonl"
    if not train.is_file():
        raise LifecycleError(f"--against {spec}: {train} is missing; drift is measured against the training split "
                             f"a run saves there.")
    prompts = []
    for n, line in enumerate(train.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                messages = json.loads(line)["messages"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise LifecycleError(f"{train}:{n}: not a chat example; the run dir is damaged.") from None
            last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=len(messages))
            prompts.append(prompt_text(messages[:last]))
    max_length = config.backend.get("max_length")
    if max_length:
        return TrainingSide(run_dir, prompts, int(max_length), "backend.max_length")
    preflight = run_dir / "preflight.json"
    if preflight.is_file():
        total = ((json.loads(preflight.read_text(encoding="utf-8")).get("tokens") or {}).get("total") or {})
        if total.get("max"):
            return TrainingSide(run_dir, prompts, int(total["max"]), "longest training conversation (preflight.json)")
    return TrainingSide(run_dir, prompts, None, "unknown (no backend.max_length, no preflight.json)")


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class MonitorReport:
    requests: int
    routes: dict[str, int]
    variants: dict[str, int]
    latency: dict[str, dict[str, Any]]
    """``served`` (what clients waited for) and each variant's answers, served or shadow."""
    statuses: dict[str, int]
    errors: dict[str, int]
    error_rate: float
    prompt_tokens: dict[str, Any]
    too_long: dict[str, Any]
    drift: DriftResult | None
    checks: list[Check]
    notes: list[str] = field(default_factory=list)
    window: dict[str, str | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("drift", "checks")}
        out["drift"] = self.drift.to_json() if self.drift else None
        out["checks"] = [c.__dict__ for c in self.checks]
        out["ok"] = self.ok
        return out


def monitor(records: list[RequestRecord], against: TrainingSide | None, *, max_p95_ms: float | None = None,
            max_error_rate: float = 0.05, max_too_long: float = 0.05, max_drift: float = 0.05, alpha: float = 0.01,
            permutations: int = 200, seed: int = 0) -> MonitorReport:
    """The health and drift of ``records`` (see the module docstring), with a check per threshold."""
    if not records:
        raise LifecycleError("The request log holds no record in the chosen window.")
    notes: list[str] = []
    latency: dict[str, dict[str, Any]] = {"served": percentiles([r.served.latency_ms for r in records
                                                                  if r.served is not None and r.served.ok])}
    for variant in sorted({a.variant for r in records for a in r.answers}):
        latency[variant] = percentiles([a.latency_ms for r in records for a in r.answers
                                        if a.variant == variant and a.ok])
    statuses = Counter(str(r.status) for r in records)
    errors = Counter(str(r.error) for r in records if r.error)
    for r in records:
        for a in r.answers:
            if not a.served and a.error:
                errors[f"{a.variant} (not served): {a.error}"] += 1
    error_rate = sum(failed(r) for r in records) / len(records)
    tokens = [r.served.prompt_tokens for r in records if r.served is not None and r.served.prompt_tokens is not None]
    from ftframe.preflight.tokens import distribution

    too_long: dict[str, Any] = {"limit": None, "from": None, "share": None, "count": None}
    if against is not None and against.max_tokens:
        over = sum(t > against.max_tokens for t in tokens)
        too_long = {"limit": against.max_tokens, "from": against.max_from, "count": over,
                    "share": over / len(tokens) if tokens else None}
    elif against is not None:
        notes.append(f"training maximum {against.max_from}: the share of too long prompts is not computed.")
    drift = None
    served_texts = [prompt_text(plain_messages(r.messages)) for r in records if r.messages]
    if against is not None and served_texts:
        drift = drift_score(against.prompts, served_texts, permutations=permutations, seed=seed)
    elif against is not None:
        notes.append("no prompt content in the log (content logging is off): drift is not computed; serve with "
                     "content logging on to measure it.")
    checks = [Check("error rate", error_rate <= max_error_rate, f"{error_rate:.2%} of requests answered 5xx/429 "
                    f"(max {max_error_rate:.2%})")]
    p95 = latency["served"]["p95"]
    if max_p95_ms is not None:
        checks.append(Check("p95 latency", p95 is not None and p95 <= max_p95_ms,
                            f"served p95 {p95} ms (max {max_p95_ms:g} ms)"))
    if too_long["share"] is not None:
        checks.append(Check("prompts over the training maximum", too_long["share"] <= max_too_long,
                            f"{too_long['count']} of {len(tokens)} ({too_long['share']:.2%}) over {too_long['limit']} "
                            f"tokens (max {max_too_long:.2%})"))
    if drift is not None:
        checks.append(Check("drift", not drift.drifted(max_score=max_drift, alpha=alpha),
                            f"score {drift.score:.4f} (max {max_drift}), p = {drift.p_value:.3f} (alpha {alpha})"))
    times = sorted(r.timestamp for r in records)
    return MonitorReport(requests=len(records), routes=dict(Counter(r.route for r in records)),
                         variants=dict(Counter(str(r.variant) for r in records)), latency=latency,
                         statuses=dict(statuses), errors=dict(errors), error_rate=error_rate,
                         prompt_tokens=distribution(tokens) if tokens else {}, too_long=too_long, drift=drift,
                         checks=checks, notes=notes, window={"first": times[0], "last": times[-1]})


def print_monitor(report: MonitorReport, console: Any, log: str) -> None:
    from rich.table import Table

    console.print(f"{log}: {report.requests} requests from {report.window['first']} to {report.window['last']}")
    console.print("routes: " + ", ".join(f"{k} {v}" for k, v in sorted(report.routes.items()))
                  + "; answered by: " + ", ".join(f"{k} {v}" for k, v in sorted(report.variants.items())))
    t = Table(title="latency (ms) of successful answers", title_justify="left")
    for col in ("answers", "n", "p50", "p95", "p99", "max"):
        t.add_column(col, justify="left" if col == "answers" else "right")
    for name, row in report.latency.items():
        t.add_row(name, *(str(row[k]) if row[k] is not None else "—" for k in ("n", "p50", "p95", "p99", "max")))
    console.print(t)
    console.print("status codes: " + ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items()))
                  + (("; error codes: " + ", ".join(f"{k} {v}" for k, v in sorted(report.errors.items())))
                     if report.errors else "; no error codes"))
    if report.prompt_tokens:
        pt = report.prompt_tokens
        console.print(f"prompt tokens: median {pt['median']}, p95 {pt['p95']}, max {pt['max']}"
                      + (f"; over the training maximum ({report.too_long['limit']}, {report.too_long['from']}): "
                         f"{report.too_long['count']}" if report.too_long["share"] is not None else ""))
    if report.drift is not None:
        d = report.drift
        console.print(f"drift ({d.statistic}): score {d.score:.4f} (divergence {d.divergence:.4f}, permutation mean "
                      f"{d.null_mean:.4f}, p = {d.p_value:.3f}; {d.served} served vs {d.reference} training prompts)")
        if d.top_terms:
            console.print("  most over-represented in served prompts: "
                          + ", ".join(f"'{t['term']}'" for t in d.top_terms[:8]))
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")
    for c in report.checks:
        console.print(f"{'[green]pass[/]' if c.passed else '[red]FAIL[/]'} {c.name}: {c.detail}")
    colour = "green" if report.ok else "red"
    console.print(f"[bold {colour}]{'HEALTHY' if report.ok else 'ALERT'}[/]")


def draw_golden(records: list[RequestRecord], out: Path, *, size: int, seed: int = 0,
                variant: str = "champion") -> int:
    """Write up to ``size`` distinct logged prompts, sampled at random (seeded), as chat JSONL with
    ``variant``'s answer as the assistant reply — candidates to review and correct before they become a
    golden set — and ``<out>.sources.jsonl`` (request id, time, both variants' answers) for the review.
    Returns how many were written."""
    from ftframe.io import write_jsonl
    from ftframe.lifecycle.compare import prompt_key

    seen: set[str] = set()
    pool = []
    for rec in records:
        answer = rec.answer(variant)
        if not rec.messages or answer is None or not answer.ok or answer.text is None:
            continue
        key = prompt_key(rec.messages)
        if key not in seen:
            seen.add(key)
            pool.append(rec)
    if not pool:
        raise LifecycleError(f"No logged request has its prompt and a {variant} answer: drawing a golden set needs "
                             f"content logging on.")
    chosen = random.Random(seed).sample(pool, min(size, len(pool)))
    rows, sources = [], []
    for i, rec in enumerate(chosen, start=1):
        messages = [m for m in plain_messages(rec.messages or []) if m["role"] != "assistant" or m["content"]]
        rows.append({"messages": [*messages, {"role": "assistant", "content": rec.answer(variant).text}]})  # type: ignore[union-attr]
        sources.append({"line": i, "request": rec.request_id, "timestamp": rec.timestamp, "where": rec.where,
                        **{a.variant: a.text for a in rec.answers}})
    write_jsonl(out, rows)
    write_jsonl(out.with_name(out.stem + ".sources.jsonl"), sources)
    return len(rows)
