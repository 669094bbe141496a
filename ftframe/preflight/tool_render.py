"""Whether the model's chat template renders the data's tools, tool calls and tool results.

A template that ignores them (SmolLM2's writes only role and content) turns a tool call into an empty
assistant turn: training would teach the model to answer nothing. This is found before training, per
example (:func:`ftframe.engine.chat.tool_rendering_problem`), and reported as an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftframe.api import Example
from ftframe.engine.chat import tool_rendering_problem

HINT = ("use a model whose chat template renders tools (e.g. a Qwen2.5-Instruct folder: model=hf_local "
        "model.path=...), or put a tools-aware chat_template.jinja into the model folder")


def _uses_tools(ex: Example) -> bool:
    return bool(ex.tools) or any(m.get("tool_calls") or m.get("role") == "tool" for m in ex.messages)


def tool_section(tokenizer: Any, examples: Sequence[Example], template: str) -> dict[str, Any]:
    """``{"examples": n using tools, "not_rendered": n, "template": name, "where": [{"source", "reason"}]}``."""
    users = [ex for ex in examples if _uses_tools(ex)]
    where = []
    for ex in users:
        convs = [[*ex.messages, ex.chosen], [*ex.messages, ex.rejected]] if ex.is_preference else [ex.messages]
        reason = next((r for r in (tool_rendering_problem(tokenizer, c, ex.tools) for c in convs) if r), None)
        if reason:
            where.append({"source": ex.source, "reason": reason})
    return {"examples": len(users), "not_rendered": len(where), "template": template, "where": where}


def tool_problem(section: dict[str, Any]) -> dict[str, str] | None:
    """The report's problem (an error) when tool content does not reach the training text."""
    if not section.get("not_rendered"):
        return None
    first = section["where"][0]
    return {"level": "error", "message": (
        f"{section['not_rendered']} of {section['examples']} example(s) with tools lose tool content in the chat "
        f"template of {section['template']} (it would silently vanish from the training text); first: "
        f"{first['source']}: {first['reason']}. To train on tool calls, {HINT}")}
