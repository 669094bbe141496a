"""MODEL_CARD.md: intended use, data and hashes, metrics with the gate, failures, config, reproduction."""

from __future__ import annotations

import json
from dataclasses import dataclass

from omegaconf import OmegaConf

from ftframe.api import ExportContext, Exporter, ExportResult, Prediction
from ftframe.io import write_text


@dataclass
class ModelCardConfig:
    filename: str = "MODEL_CARD.md"
    """File name below the run dir."""
    intended_use: str | None = None
    """One paragraph on what the model is for; default: derived from the task."""
    failures: int = 10
    """How many wrong predictions to list as known failure cases."""


def _fmt(v: object) -> str:
    return f"{v:.4f}" if isinstance(v, float) else ("—" if v is None else str(v))


def _bound(check: dict) -> str:
    return f"≥ {_fmt(check['min'])}" if "min" in check else f"≤ {_fmt(check['max'])}"


def _confidence(p: Prediction) -> float:
    """How sure the model was of a wrong answer: its log-likelihood margin over the gold label (scored
    predictions); 0 when there are no scores."""
    if not p.scores or p.gold not in p.scores or p.predicted not in p.scores:
        return 0.0
    return p.scores[p.predicted] - p.scores[p.gold]


class ModelCardExporter(Exporter):
    """A model card in Markdown, written from the run's results (nothing in it is hand-edited)."""

    name = "model_card"
    Config = ModelCardConfig

    def export(self, ctx: ExportContext) -> ExportResult:
        from ftframe.engine import generates_text  # torch: only when exporting

        cfg, m = ctx.config, ctx.manifest
        task = cfg.get("task", {})
        tuned = ctx.metrics.get("values", {})
        base = (ctx.baseline_metrics or {}).get("values", {})
        train = ctx.metrics.get("train", {})
        lines = [f"# {task.get('name', 'model')} — fine-tuned {train.get('base_model', cfg['model'].get('name'))}", ""]
        lines += ["## Intended use", "", self.config.intended_use or (
            f"A {task.get('type')} model for the `{task.get('name')}` task"
            + (f", answering with one of: {', '.join(ctx.data.get('labels') or [])}." if ctx.data.get("labels") else ".")
            + " Evaluate it on your own data before production use; see the failure cases below."), ""]
        lines += ["## Training", "", (f"- backend: `{cfg['backend'].get('name')}` "
                  f"({train.get('trainable_params')} trainable of {train.get('total_params')} parameters)"),
                  (f"- {train.get('epochs_run')} epochs, {train.get('steps')} optimizer steps, "
                  f"{train.get('train_seconds')} s, {train.get('tokens_per_second')} tokens/s"),
                  f"- best checkpoint by `{train.get('monitor')}` = {_fmt(train.get('best_score'))}",
                  f"- seed {cfg.get('seed')}", ""]
        lines += ["## Data", "", (f"- source: `{ctx.data.get('path')}`, {ctx.data.get('examples')} examples "
                  f"({ctx.data.get('rejected')} rejected)"),
                  f"- splits: {json.dumps(ctx.data.get('splits'))}", "- SHA-256 of inputs:"]
        lines += [f"  - `{p}`: `{h}`" for p, h in (ctx.data.get("files") or {}).items()]
        lines += ["", "## Evaluation (test split)", "", "| metric | baseline | tuned | gate | |",
                  "|---|---|---|---|---|"]
        checks = ctx.gate.get("checks", {})
        for name, value in tuned.items():
            chk = checks.get(name)
            verdict = ("pass" if chk["passed"] else "FAIL") if chk else ""
            lines.append(f"| {name} | {_fmt(base.get(name))} | {_fmt(value)} | {_bound(chk) if chk else ''} "
                         f"| {verdict} |")
        lines += ["", f"Gate: **{'passed' if ctx.gate.get('passed', True) else 'FAILED'}**"
                  + (" (checked on the golden set)" if ctx.gate.get("on") == "golden" else "") + "; evaluation mode "
                  f"`{ctx.metrics.get('mode')}`.", ""]
        per_class = ctx.metrics.get("details", {}).get("macro_f1", {}).get("per_class")
        if per_class:
            lines += ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
            lines += [f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                      for k, v in per_class.items()]
            lines.append("")
        wrong = sorted((p for p in ctx.predictions if (p.gold or "").strip() != p.predicted.strip()),
                       key=_confidence, reverse=True)
        lines += ["## Known failure cases", "", f"{len(wrong)} of {len(ctx.predictions)} test answers were wrong"
                  + (" (most confidently wrong first)." if any(p.scores for p in wrong) else ".")]
        if wrong:
            lines += ["", "| input | gold | predicted |", "|---|---|---|"]
            for p in wrong[: self.config.failures]:
                text = next((x.get("content") or "" for x in reversed(p.prompt) if x.get("role") == "user"), "")
                text = " ".join(text.split())[:160].replace("|", "\\|")
                lines.append(f"| {text} | {p.gold} | {p.predicted.replace('|', '/')} |")
        lines += ["", "## Use", "", "```", f"ftframe predict {ctx.run_dir} --input questions.jsonl"]
        if not generates_text(ctx.trained.model):  # a class head: nothing to serve, no GGUF
            lines += [f"ftframe export {ctx.run_dir} exporters=[merged]   # a *ForSequenceClassification model"]
        else:
            lines += [f"ftframe serve {ctx.run_dir}   # OpenAI-compatible API on http://127.0.0.1:8000/v1",
                      f"ftframe export {ctx.run_dir} exporters=[merged,gguf]"]
        lines += ["```"]
        lines += ["", "## Reproduce", "", "```", " ".join(["python -m ftframe", *m.get("argv", [])[1:]]), "```", "",
                  (f"ftframe commit `{m['git'].get('commit')}`{' (dirty tree)' if m['git'].get('dirty') else ''}; "
                  "package versions:"), ""]
        lines += [f"- {k} {v}" for k, v in m.get("packages", {}).items() if v]
        lines += ["", "<details><summary>Resolved configuration</summary>", "", "```yaml",
                  OmegaConf.to_yaml(OmegaConf.create(cfg)).rstrip(), "```", "</details>", ""]
        path = write_text(ctx.run_dir / self.config.filename, "\n".join(lines))
        return ExportResult([str(path)])
