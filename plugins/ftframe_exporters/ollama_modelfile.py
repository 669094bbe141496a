"""An Ollama Modelfile for an exported GGUF: ``FROM``, a ``TEMPLATE`` that renders prompts exactly as the
model's own (Jinja) chat template does, the default ``SYSTEM`` prompt, stop tokens and greedy parameters.

Ollama's ``TEMPLATE`` is a Go ``text/template``, not Jinja, so the Jinja template cannot be copied; it is
*measured* instead: rendering conversations with sentinel contents gives, for each role, the text before
and after a message's content, the default system prompt the template adds when a conversation has none,
and the generation prompt. From those the Go template is written, and then checked: it is rendered (by
:func:`render_go_template`, which executes the small subset of ``text/template`` written here and refuses
anything else) on sample conversations and must give exactly the text ftframe's template gives. A template
that is not "per-message wrapper + generation prompt" (e.g. one that reorders or merges messages) is refused
with a clear error rather than approximated.

Ollama itself prepends the Modelfile's ``SYSTEM`` as a system message when a request has none (its chat
handler), which is how the template's default system prompt is reproduced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ftframe.errors import FtframeError

ROLES = ("system", "user", "assistant")
_SENTINEL = {"system": "FTFRAMExSYSTEMx7Q", "user": "FTFRAMExUSERx7Q", "assistant": "FTFRAMExASSISTANTx7Q"}

Renderer = Callable[[Sequence[dict[str, str]], bool], str]
"""``render(messages, generation_prompt) -> text``: the model's own chat template."""


@dataclass
class ChatLayout:
    """A chat template measured as per-role wrappers around each message's content."""

    head: dict[str, str]
    tail: dict[str, str]
    generation_prompt: str
    default_system: str | None = None
    notes: list[str] = field(default_factory=list)


def _split(text: str, marker: str, where: str) -> tuple[str, str]:
    if text.count(marker) != 1:
        raise FtframeError(f"{where}: the message content appears {text.count(marker)} times in the rendered "
                           "template, not once.")
    before, after = text.split(marker)
    return before, after


def measure_layout(render: Renderer) -> ChatLayout:
    """Measure ``render`` (the Jinja chat template) as per-role wrappers; raises when it is not one."""
    s, u, a = (_SENTINEL[r] for r in ROLES)
    sys_msg, user_msg, asst_msg = ({"role": r, "content": _SENTINEL[r]} for r in ROLES)
    where = "Ollama Modelfile"
    try:
        only_sys = render([sys_msg], False)
        sys_user = render([sys_msg, user_msg], False)
        sys_user_asst = render([sys_msg, user_msg, asst_msg], False)
        sys_user_gen = render([sys_msg, user_msg], True)
        user_only = render([user_msg], False)
    except Exception as exc:  # a template may raise on any role order it does not support
        raise FtframeError(f"{where}: the chat template cannot render a system + user + assistant conversation "
                           f"({exc}); set exporters.gguf.modelfile=false.") from exc
    head, tail = {}, {}
    head["system"], tail["system"] = _split(only_sys, s, where)
    if not sys_user.startswith(only_sys) or not sys_user_asst.startswith(sys_user):
        raise FtframeError(f"{where}: the chat template changes earlier messages when one is added, so it is not "
                           "a per-message template Ollama's TEMPLATE can express; set exporters.gguf.modelfile=false.")
    head["user"], tail["user"] = _split(sys_user[len(only_sys):], u, where)
    head["assistant"], tail["assistant"] = _split(sys_user_asst[len(sys_user):], a, where)
    if not sys_user_gen.startswith(sys_user):
        raise FtframeError(f"{where}: the generation prompt does not follow the rendered conversation.")
    generation = sys_user_gen[len(sys_user):]
    layout = ChatLayout(head, tail, generation)
    user_part = head["user"] + u + tail["user"]
    if not user_only.endswith(user_part):
        raise FtframeError(f"{where}: a conversation without a system message renders its user message "
                           "differently; set exporters.gguf.modelfile=false.")
    prefix = user_only[: len(user_only) - len(user_part)]
    if prefix:
        if not (prefix.startswith(head["system"]) and prefix.endswith(tail["system"])):
            raise FtframeError(f"{where}: the template adds text before the first message that is not a system "
                               f"message ({prefix[:60]!r}); set exporters.gguf.modelfile=false.")
        layout.default_system = prefix[len(head["system"]): len(prefix) - len(tail["system"])]
    return layout


def _literal(text: str) -> str:
    """Text for a Go template: ``{{`` would open an action, so it is written as a string action."""
    return text.replace("{{", '{{ "{{" }}')


def go_template(layout: ChatLayout) -> str:
    """The Go ``text/template`` for ``layout`` (over Ollama's ``.Messages``; no whitespace trimming)."""
    common = _common_role_wrapper(layout)
    if common is not None:
        before, after, tail = common
        body = f"{_literal(before)}{{{{ .Role }}}}{_literal(after)}{{{{ .Content }}}}{_literal(tail)}"
    else:
        branches = [f'{{{{ {"if" if i == 0 else "else if"} eq .Role "{r}" }}}}'
                    f"{_literal(layout.head[r])}{{{{ .Content }}}}{_literal(layout.tail[r])}"
                    for i, r in enumerate(ROLES)]
        body = "".join(branches) + "{{ end }}"
    return f"{{{{ range .Messages }}}}{body}{{{{ end }}}}{_literal(layout.generation_prompt)}"


def _common_role_wrapper(layout: ChatLayout) -> tuple[str, str, str] | None:
    """``(before, after, tail)`` when every role's head is ``before + role + after`` and tails are equal."""
    if len({layout.tail[r] for r in ROLES}) != 1:
        return None
    first = layout.head[ROLES[0]]
    at = first.find(ROLES[0])
    if at < 0:
        return None
    before, after = first[:at], first[at + len(ROLES[0]):]
    if all(layout.head[r] == before + r + after for r in ROLES):
        return before, after, layout.tail[ROLES[0]]
    return None


# ---------------------------------------------------------------- a strict subset of Go's text/template
_ACTION = re.compile(r"\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}", re.DOTALL)


def render_go_template(template: str, messages: Sequence[dict[str, str]]) -> str:
    """Execute ``template`` the way Go's ``text/template`` does, for the constructs :func:`go_template`
    writes: text, ``{{ range .Messages }}``, ``{{ if eq .Role "x" }}`` / ``else if`` / ``else`` / ``end``,
    ``{{ .Role }}``, ``{{ .Content }}``, string literals and the ``{{-``/``-}}`` trim markers. Anything else
    raises ``ValueError`` (so the check never passes a template it did not understand)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(template):
        text = template[pos:m.start()]
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        tokens.append(("text", text))
        tokens.append(("action", m.group(2)))
        if m.group(3):
            rest = template[m.end():]
            pos = m.end() + (len(rest) - len(rest.lstrip(" \t\r\n")))
        else:
            pos = m.end()
    tokens.append(("text", template[pos:]))
    tree, _ = _parse(tokens, 0, top=True)
    return "".join(_execute(tree, {"Messages": list(messages)}, None))


def _parse(tokens: list[tuple[str, str]], i: int, *, top: bool = False) -> tuple[list[Any], int]:
    nodes: list[Any] = []
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "text":
            if value:
                nodes.append(("text", value))
            i += 1
            continue
        if value == "end" or value == "else" or value.startswith("else if "):
            if top:
                raise ValueError(f"unexpected {{{{ {value} }}}}")
            return nodes, i
        if value == "range .Messages":
            body, i = _parse(tokens, i + 1)
            if tokens[i][1] != "end":
                raise ValueError("range without end")
            nodes.append(("range", body))
            i += 1
        elif value.startswith("if "):
            branches = []
            cond = value[3:]
            while True:
                body, i = _parse(tokens, i + 1)
                branches.append((cond, body))
                closing = tokens[i][1]
                if closing == "end":
                    break
                cond = closing[len("else if "):] if closing.startswith("else if ") else None
            nodes.append(("if", branches))
            i += 1
        elif value in (".Role", ".Content"):
            nodes.append(("field", value[1:]))
            i += 1
        elif re.fullmatch(r'"(?:[^"\\]|\\.)*"', value):
            nodes.append(("text", json.loads(value)))  # Go's and JSON's simple escapes agree
            i += 1
        else:
            raise ValueError(f"unsupported action {{{{ {value} }}}}")
    if not top:
        raise ValueError("missing {{ end }}")
    return nodes, i


def _condition(cond: str | None, item: dict[str, str] | None) -> bool:
    if cond is None:
        return True
    m = re.fullmatch(r'eq \.(Role|Content) "((?:[^"\\]|\\.)*)"', cond)
    if m is None or item is None:
        raise ValueError(f"unsupported condition {cond!r}")
    return item.get(m.group(1).lower(), "") == m.group(2)


def _execute(nodes: list[Any], data: dict[str, Any], item: dict[str, str] | None) -> list[str]:
    out: list[str] = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "field":
            if item is None:
                raise ValueError(f".{node[1]} outside range .Messages")
            out.append(item.get(node[1].lower(), ""))
        elif node[0] == "range":
            for message in data["Messages"]:
                out.extend(_execute(node[1], data, message))
        elif node[0] == "if":
            for cond, body in node[1]:
                if _condition(cond, item):
                    out.extend(_execute(body, data, item))
                    break
    return out


# ---------------------------------------------------------------- the Modelfile
def ollama_messages(messages: Sequence[dict[str, Any]], default_system: str | None) -> list[dict[str, str]]:
    """The messages Ollama's chat handler hands the template: the Modelfile's ``SYSTEM`` is prepended when
    the conversation does not start with a system message."""
    plain = [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in messages]
    if default_system is not None and (not plain or plain[0]["role"] != "system"):
        plain.insert(0, {"role": "system", "content": default_system})
    return plain


SAMPLE_CONVERSATIONS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help?"},
     {"role": "user", "content": "Meine Rechnung ist doppelt.\nBitte prüfen."}],
]


def check_template(template: str, default_system: str | None, render: Renderer,
                   conversations: Sequence[Sequence[dict[str, Any]]]) -> int:
    """Render each conversation (with a generation prompt) through the Go template as Ollama would and
    through the model's own template; raise on the first difference. Returns how many were compared."""
    for n, conv in enumerate(conversations, start=1):
        want = render(list(conv), True)
        got = render_go_template(template, ollama_messages(conv, default_system))
        if got != want:
            raise FtframeError(f"Ollama Modelfile: its TEMPLATE renders sample conversation {n} differently from "
                               f"the model's chat template ({got[:80]!r} vs {want[:80]!r}); "
                               "set exporters.gguf.modelfile=false.")
    return len(conversations)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def modelfile_text(gguf_name: str, template: str, *, default_system: str | None, stops: Sequence[str],
                   parameters: dict[str, Any]) -> str:
    """The Modelfile: ``FROM ./<gguf>``, ``TEMPLATE`` and ``SYSTEM`` in triple quotes, one ``PARAMETER``
    line per stop token and option."""
    for what, value in (("TEMPLATE", template), ("SYSTEM", default_system or "")):
        if '"""' in value:
            raise FtframeError(f'Ollama Modelfile: the {what} contains """, which a Modelfile cannot quote.')
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    if default_system is not None:
        lines.append(f'SYSTEM """{default_system}"""')
    lines += [f"PARAMETER stop {_quoted(s)}" for s in stops]
    lines += [f"PARAMETER {k} {v}" for k, v in parameters.items()]
    return "\n".join(lines) + "\n"
