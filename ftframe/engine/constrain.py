"""Schema-constrained decoding: OpenAI's ``response_format`` turned into a per-token mask by llguidance.

``response_format`` has OpenAI's shape everywhere (evaluation builds it from ``eval.response_format`` and
``task.output_schema``; ``ftframe serve`` takes it from the request as the client sent it):

- ``{"type": "text"}`` or ``None``: free decoding;
- ``{"type": "json_object"}``: any JSON object;
- ``{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}, "strict": true}}``: JSON that
  conforms to the schema.

Why llguidance (Microsoft's guidance engine, also behind vLLM's and SGLang's structured outputs): it
installs here as one wheel with no dependencies, works with any fast Hugging Face tokenizer on the CPU,
computes a token mask in microseconds, and compiles JSON schemas itself (no hand-written JSON automaton
here). Checked against the others on this machine: xgrammar pulls triton and apache-tvm-ffi (a GPU stack),
outlines-core builds a whole regex index per schema up front, lm-format-enforcer is pure Python per token.

The JSON layout is fixed to ``json.dumps``' default separators (``", "`` and ``": "``) with no newlines,
as the training targets of the shipped tasks are written (``eval.json_whitespace=flexible`` lets the
model choose any JSON whitespace instead). llguidance emits object properties in the schema's
``properties`` order, so a schema should list them in the order the training answers use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ftframe.errors import ConfigError

RESPONSE_FORMATS = ("text", "json_object", "json_schema")
JSON_WHITESPACE = ("compact", "flexible")
_LAYOUT = {"compact": {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "},
           "flexible": {"whitespace_flexible": True}}


class ResponseFormatError(ValueError):
    """A ``response_format`` that cannot be decoded under; ``param`` names the offending part."""

    def __init__(self, message: str, param: str = "response_format"):
        super().__init__(message)
        self.param = param


def json_schema_of(response_format: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The JSON schema a ``response_format`` asks for (``{"type": "object"}`` for ``json_object``), or
    ``None`` for free text. Raises :class:`ResponseFormatError` for a malformed one."""
    if response_format is None:
        return None
    if not isinstance(response_format, Mapping):
        raise ResponseFormatError("'response_format' must be an object such as {\"type\": \"json_object\"}.")
    kind = response_format.get("type")
    if kind not in RESPONSE_FORMATS:
        raise ResponseFormatError(f"'response_format.type' must be one of {', '.join(RESPONSE_FORMATS)}, got "
                                  f"{kind!r}.", "response_format.type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    spec = response_format.get("json_schema")
    if not isinstance(spec, Mapping):
        raise ResponseFormatError("'response_format.json_schema' must be an object with 'name' and 'schema'.",
                                  "response_format.json_schema")
    schema = spec.get("schema", {})  # OpenAI: a missing schema means any JSON object
    if not isinstance(schema, Mapping):
        raise ResponseFormatError("'response_format.json_schema.schema' must be a JSON schema object.",
                                  "response_format.json_schema.schema")
    check_schema(schema, "response_format.json_schema.schema", ResponseFormatError)
    return dict(schema)


def check_schema(schema: Any, where: str, error: type[Exception] = ConfigError) -> None:
    """Raise ``error`` naming ``where`` unless ``schema`` is a valid JSON schema (the ``jsonschema``
    package's own meta-schema check)."""
    from jsonschema import validators
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, Mapping):
        raise _error(error, f"{where}: a JSON schema must be an object, got {type(schema).__name__}.", where)
    try:
        validators.validator_for(dict(schema)).check_schema(dict(schema))
    except SchemaError as exc:
        raise _error(error, f"{where}: not a valid JSON schema: {exc.message}.", where) from None


def _error(error: type[Exception], message: str, where: str) -> Exception:
    return error(message, where) if error is ResponseFormatError else error(message)


def response_format_for_schema(schema: Mapping[str, Any] | None, name: str = "output") -> dict[str, Any] | None:
    """OpenAI's ``json_schema`` response format for ``schema`` (``None`` for none)."""
    if schema is None:
        return None
    return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema), "strict": True}}


def _ll_tokenizer(tokenizer: Any, vocab_size: int) -> Any:
    """llguidance's view of ``tokenizer`` (about a second to build, so kept on the tokenizer object)."""
    cached = getattr(tokenizer, "_ftframe_llguidance", None)
    if cached is not None and cached[0] == vocab_size:
        return cached[1]
    import llguidance.hf

    try:
        ll = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)
    except ValueError as exc:  # a slow (Python) tokenizer
        raise ConfigError(f"Constrained decoding needs a fast Hugging Face tokenizer ({exc}); use "
                          f"eval.response_format=text.") from None
    tokenizer._ftframe_llguidance = (vocab_size, ll)
    return ll


@dataclass
class Grammar:
    """A compiled ``response_format`` for one tokenizer; :meth:`matcher` starts one answer under it."""

    ll_tokenizer: Any
    grammar: str
    schema: dict[str, Any]

    def matcher(self) -> Any:
        import llguidance

        return llguidance.LLMatcher(self.ll_tokenizer, self.grammar)


def compile_response_format(response_format: Mapping[str, Any] | None, tokenizer: Any, vocab_size: int, *,
                            whitespace: str = "compact") -> Grammar | None:
    """The grammar ``response_format`` asks for, checked against ``tokenizer`` (``None``: free text).

    Raises :class:`ResponseFormatError` when the format is malformed or its schema cannot be satisfied
    or is not supported by llguidance (e.g. a required property that is not allowed)."""
    import llguidance

    schema = json_schema_of(response_format)
    if schema is None:
        return None
    ll = _ll_tokenizer(tokenizer, vocab_size)
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema), defaults=_LAYOUT[whitespace])
    except ValueError as exc:
        raise ResponseFormatError(f"The JSON schema cannot be used for decoding: {exc}.",
                                  "response_format.json_schema.schema") from None
    problem = llguidance.LLMatcher.validate_grammar(grammar, ll)
    if problem:
        raise ResponseFormatError(f"The JSON schema cannot be used for decoding: {problem}.",
                                  "response_format.json_schema.schema")
    return Grammar(ll, grammar, schema)


# ------------------------------------------------------------------------------------------ extractive
# Why a Lark grammar here rather than a JSON schema: a schema cannot say "a substring of this text". The
# grammar below only lays out the object (keys in ``properties`` order, ``json.dumps``' separators); each
# extractive value is llguidance's own ``substring_chars`` lexeme intersected with the property's
# constraints, and every other value is the property's JSON schema compiled by llguidance (``%json``).
_PLAIN_JSON_CHARS = r'[^"\\\x00-\x1f]'  # characters a JSON string holds unescaped


def extractive_problems(schema: Mapping[str, Any] | None, fields: Sequence[str], where: str = "eval.extractive"
                        ) -> list[str]:
    """Why ``fields`` cannot be decoded extractively under ``schema`` (empty when they can): the schema must
    be an object and each field one of its string properties without ``enum``/``const``/``format``."""
    if not fields:
        return []
    if schema is None:
        return [f"{where} copies values of task.output_schema's properties, but the task has no output_schema."]
    props = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(props, Mapping):
        return [f"{where} needs task.output_schema to be an object with properties."]
    out = []
    for name in fields:
        spec = props.get(name)
        if not isinstance(spec, Mapping):
            out.append(f"{where}: {name!r} is not a property of task.output_schema (properties: {', '.join(props)}).")
        elif spec.get("type") != "string" or any(k in spec for k in ("enum", "const", "format")):
            out.append(f"{where}: {name!r} must be a plain string property (type string, no enum, const or format) "
                       f"to be copied from the message; it is {json.dumps(dict(spec))}.")
    return out


def _strip_anchors(pattern: str) -> tuple[str, bool, bool]:
    """A JSON-schema ``pattern`` without its ``^``/``$``, and whether each was there."""
    start = pattern.startswith("^")
    core = pattern[1:] if start else pattern
    end = core.endswith("$") and not core.endswith("\\$")
    return (core[:-1] if end else core), start, end


def _pattern_body(pattern: str) -> str:
    """A JSON-schema ``pattern`` (a search) as a regex that must match the whole value."""
    core, start, end = _strip_anchors(pattern)
    return ("" if start else ".*") + core + ("" if end else ".*")


def _extract_lexeme(spec: Mapping[str, Any], source: str) -> str:
    """A Lark terminal: a substring of ``source`` that is also the property's string (its pattern, length
    bounds) and needs no JSON escape."""
    lo, hi = int(spec.get("minLength", 0)), spec.get("maxLength")
    parts = [f'%regex {json.dumps({"substring_chars": source})}',
             f"/{_PLAIN_JSON_CHARS}{{{lo},{'' if hi is None else int(hi)}}}/"]
    if spec.get("pattern") is not None:
        parts.append("/" + _pattern_body(str(spec["pattern"])).replace("/", "\\/") + "/")
    return " & ".join(parts)


def _copyable(spec: Mapping[str, Any], source: str) -> bool:
    """Whether some substring of ``source`` is a value of the property (else its key must not be opened:
    the grammar would have no way to finish the string). Checked with Python's ``re`` on each stretch of
    characters a JSON string holds unescaped; a pattern Python cannot read counts as copyable."""
    import re

    lo, hi = int(spec.get("minLength", 0)), spec.get("maxLength")
    stretches = re.split(r'["\\\x00-\x1f]', source)
    if spec.get("pattern") is None:
        return any(len(t) >= lo for t in stretches)
    try:
        value = re.compile(_strip_anchors(str(spec["pattern"]))[0])
    except re.error:
        return True
    return any(lo <= len(m.group()) <= (hi if hi is not None else len(t))
               for t in stretches for i in range(len(t)) if (m := value.match(t, i)))


def extractive_lark(schema: Mapping[str, Any], fields: Sequence[str], source: str) -> str:
    """The Lark grammar of a compact JSON object conforming to ``schema`` (a flat object) whose ``fields``
    are copied from ``source``: keys in ``properties`` order, the required ones present, others optional."""
    required = set(schema.get("required", ()))
    copied = {name for name in fields if _copyable(schema["properties"][name], source)}
    # an optional property with nothing to copy is left out; a required one keeps its plain schema
    props = [(name, spec) for name, spec in schema["properties"].items()
             if name not in fields or name in copied or name in required]
    layout = {"x-guidance": _LAYOUT["compact"]}
    lines = []
    for i, (name, spec) in enumerate(props):
        key = json.dumps(json.dumps(name) + ": ")  # a JSON string literal is a Lark string literal
        if name in copied:
            lines += [f'p{i}: {key} "\\"" V{i} "\\""', f"V{i}: {_extract_lexeme(spec, source)}"]
        else:
            lines.append(f"p{i}: {key} %json {json.dumps({**dict(spec), **layout})}")

    def choices(start: int, sep: str) -> tuple[list[str], bool]:
        """What may come after property ``start - 1``: the next present property and its tail; and whether
        nothing may (no required property left)."""
        alts = []
        for j in range(start, len(props)):
            alts.append(f"{sep}p{j} a{j}")
            if props[j][0] in required:
                return alts, False
        return alts, True

    for i in range(len(props)):
        alts, may_end = choices(i + 1, '", " ')
        lines.append(f"a{i}: " + (" | ".join(alts) + (" |" if may_end else "") if alts else '""'))
    first, may_be_empty = choices(0, "")
    lines.insert(0, 'start: "{" body "}"')
    lines.insert(1, "body: " + " | ".join(first) + (" |" if may_be_empty else ""))
    return "\n".join(lines) + "\n"


@dataclass
class ExtractiveGrammar:
    """``schema`` with ``fields`` copied from each prompt's text: :meth:`for_source` compiles one prompt's
    grammar (a few milliseconds)."""

    ll_tokenizer: Any
    schema: dict[str, Any]
    fields: tuple[str, ...]

    def for_source(self, source: str) -> Grammar:
        import llguidance

        grammar = llguidance.grammar_from("lark", extractive_lark(self.schema, self.fields, source))
        problem = llguidance.LLMatcher.validate_grammar(grammar, self.ll_tokenizer)
        if problem:
            raise ResponseFormatError(f"The extractive grammar cannot be used for decoding: {problem}.",
                                      "eval.extractive")
        return Grammar(self.ll_tokenizer, grammar, self.schema)
