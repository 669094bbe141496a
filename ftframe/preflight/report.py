"""The preflight report: format errors by type, token statistics, class balance, duplicates, leakage, and
the cost/time estimate — one JSON-ready dict (``preflight.json``) built from loaded, split data."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from ftframe.api import Example, Rejected
from ftframe.preflight.format_checks import ERROR_TYPES
from ftframe.preflight.overlap import duplicate_groups, leakage
from ftframe.preflight.tokens import TokenCount, count_tokens, distribution
from ftframe.preflight.tool_render import tool_problem, tool_section

TOO_LONG = ("truncate", "drop", "chunk")


def format_errors(rejected: Sequence[Rejected]) -> dict[str, dict[str, Any]]:
    """Rejected rows per error type: ``{type: {"count", "meaning", "where": [{"source", "reason"}]}}``."""
    out: dict[str, dict[str, Any]] = {}
    for r in rejected:
        entry = out.setdefault(r.kind, {"count": 0, "meaning": ERROR_TYPES.get(r.kind, "rejected by the data format"),
                                        "where": []})
        entry["count"] += 1
        entry["where"].append({"source": r.source, "reason": r.reason})
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["count"]))


def _too_long_action(policy: str, max_length: int, n: int, lost: int) -> str:
    if policy == "drop":
        return f"dropped from training (written to rejected.jsonl with the reason 'longer than {max_length} tokens')"
    if policy == "chunk":
        return (f"split at turn boundaries into windows of at most {max_length} tokens (earlier turns kept as "
                f"untrained context); a single exchange still too long is cut")
    return (f"cut from the end to {max_length} tokens: {lost} trained tokens lost in {n} example(s); set "
            f"transforms.too_long=drop or chunk, or raise backend.max_length")


def tokens_trained_on(total: int, max_length: int | None, policy: str) -> int:
    """How many of an example's ``total`` tokens a training step processes under ``transforms.too_long``:
    ``truncate`` cuts at ``max_length``, ``drop`` leaves the example out, ``chunk`` keeps every token (the
    context repeated in later windows is not counted)."""
    if not max_length or total <= max_length or policy == "chunk":
        return total
    return 0 if policy == "drop" else max_length


def token_section(counts: dict[str, list[TokenCount]], max_length: int | None, policy: str) -> dict[str, Any]:
    every = [c for rows in counts.values() for c in rows]
    section: dict[str, Any] = {
        "total": distribution([c.total for c in every]),
        "trained": distribution([c.trained for c in every]),
        "per_split": {name: {"examples": len(rows), "total_tokens": sum(c.total for c in rows),
                             "trained_tokens": sum(c.trained for c in rows),
                             "tokens_within_max_length": sum(min(c.total, max_length or c.total) for c in rows),
                             "tokens_trained_on": sum(tokens_trained_on(c.total, max_length, policy) for c in rows)}
                      for name, rows in counts.items()},
        "max_length": max_length,
        "lengths": {"total": [c.total for c in every], "trained": [c.trained for c in every]},
    }
    if max_length:
        over = [c for c in every if c.total > max_length]
        lost = sum(c.trained - c.trained_after_cut for c in over)
        section.update(over_max_length=len(over), over_max_length_where=[c.source for c in over],
                       trained_tokens_lost_if_cut=lost, no_trained_token_left=sum(1 for c in over if not c.trained_after_cut),
                       too_long=policy, action=_too_long_action(policy, max_length, len(over), lost) if over else "none")
    return section


def class_balance(splits: dict[str, list[Example]]) -> dict[str, Any]:
    per_split = {name: dict(Counter(ex.target or "" for ex in rows).most_common()) for name, rows in splits.items()}
    train = per_split.get("train", {})
    counts = list(train.values())
    unseen = {name: sorted(set(c) - set(train)) for name, c in per_split.items() if name != "train"}
    return {"labels": len(set().union(*[set(c) for c in per_split.values()])) if per_split else 0,
            "per_split": per_split,
            "imbalance_ratio": round(max(counts) / min(counts), 2) if counts else None,
            "singletons_in_train": sorted(k for k, v in train.items() if v == 1),
            "unseen_in_train": {k: v for k, v in unseen.items() if v}}


def build_report(*, splits: dict[str, list[Example]], rejected: Sequence[Rejected], tokenizer: Any,
                 max_length: int | None, too_long: str = "truncate", task_type: str = "generation",
                 leak_level: str = "warning", info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report for ``splits`` (all data under ``"train"`` when not split yet). ``leak_level`` is how a
    train/test overlap counts: ``warning`` (data check) or ``error`` (a run that does not allow it)."""
    counts = {name: count_tokens(tokenizer, rows, max_length) for name, rows in splits.items()}
    everything = [ex for rows in splits.values() for ex in rows]
    report: dict[str, Any] = {
        **(info or {}),
        "examples": len(everything),
        "splits": {name: len(rows) for name, rows in splits.items()},
        "rejected": len(rejected),
        "format_errors": format_errors(rejected),
        "error_types": {k: v for k, v in ERROR_TYPES.items()},
        "tokens": token_section(counts, max_length, too_long),
        "preference_pairs": sum(1 for ex in everything if ex.is_preference),
        "labelled_replies": {"desirable": sum(1 for ex in everything if ex.desirable is True),
                             "undesirable": sum(1 for ex in everything if ex.desirable is False)},
    }
    if task_type == "classification":
        report["class_balance"] = class_balance(splits)
    groups = duplicate_groups(everything)
    report["duplicates"] = {"groups": len(groups), "extra_copies": sum(len(g) - 1 for g in groups), "where": groups}
    held_out = [ex for name, rows in splits.items() if name != "train" for ex in rows]
    leaks = leakage(splits.get("train", []), held_out) if held_out else {"exact": [], "near": []}
    report["leakage"] = {"exact": len(leaks["exact"]), "near": len(leaks["near"]), "where": leaks,
                         "level": leak_level}
    report["tools"] = tool_section(tokenizer, everything,
                                   str(report.get("model") or report.get("tokenizer") or "the model"))
    report["problems"] = problems(report, leak_level)
    return report


def problems(report: dict[str, Any], leak_level: str) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for kind, entry in report["format_errors"].items():
        first = entry["where"][0]
        out.append({"level": "error", "message": f"{entry['count']} row(s) with {kind} ({entry['meaning']}); first: "
                                                 f"{first['source']}: {first['reason']}"})
    tools = tool_problem(report.get("tools") or {})
    if tools:
        out.append(tools)
    tok = report["tokens"]
    if tok.get("over_max_length"):
        out.append({"level": "warning", "message": f"{tok['over_max_length']} example(s) longer than "
                                                   f"max_length={tok['max_length']}: {tok['action']}"})
    if tok.get("no_trained_token_left") and tok.get("too_long") == "truncate":
        out.append({"level": "warning", "message": f"{tok['no_trained_token_left']} example(s) keep no trained token "
                                                   f"after the cut (they teach nothing)"})
    dup = report["duplicates"]
    if dup["groups"]:
        out.append({"level": "warning", "message": f"{dup['extra_copies']} exact duplicate(s) in {dup['groups']} "
                                                   f"group(s), e.g. {', '.join(dup['where'][0][:3])} "
                                                   f"(transforms.dedup=true removes them)"})
    leak = report["leakage"]
    if leak["exact"] or leak["near"]:
        first = (leak["where"]["exact"] or leak["where"]["near"])[0]
        hint = ("set data_checks.allow_leakage=true to run anyway" if leak_level == "error"
                else "a run stops on this unless data_checks.allow_leakage=true")
        out.append({"level": leak_level, "message": f"train/test leakage: {leak['exact']} held-out prompt(s) also in "
                                                    f"training exactly, {leak['near']} after normalising text; e.g. "
                                                    f"{first['held_out']} = {first['train']} ({hint}; "
                                                    f"transforms.dedup=true before splitting avoids it)"})
    cb = report.get("class_balance")
    if cb and cb["unseen_in_train"]:
        out.append({"level": "warning", "message": f"labels never seen in training: {cb['unseen_in_train']}"})
    if cb and cb["imbalance_ratio"] and cb["imbalance_ratio"] >= 10:
        out.append({"level": "warning", "message": f"class imbalance: the largest training class is "
                                                   f"{cb['imbalance_ratio']}x the smallest"})
    return out


def estimate(report: dict[str, Any], *, epochs: int | None, throughput: dict[str, Any] | None,
             cost: dict[str, Any] | None) -> dict[str, Any]:
    """Time (and provider cost) of training on the train split: tokens per epoch (as training sees them, after
    ``transforms.too_long``) x epochs / tokens per second."""
    tok = report["tokens"]
    train = tok["per_split"].get("train", {"total_tokens": 0, "examples": 0})
    per_epoch = train.get("tokens_trained_on", train["total_tokens"])  # after truncate/drop, as training sees them
    out: dict[str, Any] = {"epochs": epochs, "train_tokens_per_epoch": per_epoch,
                           "train_examples": train["examples"]}
    if per_epoch != train["total_tokens"]:
        out["train_tokens_before_too_long"] = train["total_tokens"]
        out["too_long"] = tok.get("too_long")
    if throughput:
        out["local"] = dict(throughput)
        if epochs:
            seconds = epochs * per_epoch / max(throughput["tokens_per_second"], 1e-9)
            out["local"]["seconds"] = round(seconds, 1)
    if cost is not None:
        out["provider"] = cost
    return out

