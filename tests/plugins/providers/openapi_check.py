"""Validate JSON against an OpenAPI document's schemas with ``jsonschema`` (draft 2020-12).

OpenAPI 3.0 keywords that JSON Schema lacks are rewritten first: ``nullable: true`` becomes "or null",
and a boolean ``exclusiveMinimum``/``exclusiveMaximum`` becomes the numeric form. ``$ref``s to
``#/components/schemas/...`` resolve inside the same document.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator


def to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if not k.startswith("x-") and k != "example"}
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool) and out.pop(bound) and limit in out:
            out[bound] = out.pop(limit)
    if out.pop("nullable", False):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


class OpenApi:
    """One OpenAPI document: its operations and their request/response schemas."""

    def __init__(self, doc: dict[str, Any]):
        self.doc = to_json_schema(doc)
        self.components = self.doc.get("components", {})
        self.routes = []
        for template, ops in self.doc.get("paths", {}).items():
            pattern = re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", template) + "$")
            self.routes.append((pattern, template, ops))

    @classmethod
    @lru_cache(maxsize=4)
    def load(cls, path: Path) -> OpenApi:
        return cls(yaml.safe_load(Path(path).read_text(encoding="utf-8")))

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for pattern, template, ops in self.routes:
            if pattern.match(path) and method.lower() in ops:
                return template, ops[method.lower()]
        return None

    def errors(self, schema: dict[str, Any], instance: Any) -> list[str]:
        """Every violation of ``schema`` (which may ``$ref`` this document's components) by ``instance``."""
        full = {**copy.deepcopy(schema), "components": self.components}
        validator = Draft202012Validator(full)
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
                for e in validator.iter_errors(instance)]

    def component(self, name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    def request_schema(self, op: dict[str, Any], content_type: str) -> dict[str, Any] | None:
        content = (op.get("requestBody") or {}).get("content") or {}
        return (content.get(content_type) or {}).get("schema")

    def response_schema(self, op: dict[str, Any], status: int) -> dict[str, Any] | None:
        response = (op.get("responses") or {}).get(str(status)) or {}
        return ((response.get("content") or {}).get("application/json") or {}).get("schema")
