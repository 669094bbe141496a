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
from collections.abc import Mapping
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
