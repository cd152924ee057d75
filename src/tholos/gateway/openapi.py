"""The OpenAPI document as the API really behaves: errors in the envelope (400 off the schema,
422 for a cross-field rule; never FastAPI's HTTPValidationError), request-body `$defs` moved into components so every `$ref` resolves, and the id formats
of path parameters. Checked in as docs/openapi.json (`make openapi` rewrites it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi import Path as PathParam
from fastapi.openapi.utils import get_openapi

SPEC_FILE = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
KEY_ID_PATTERN = "^[0-9a-f]{32}$"
UNPROCESSABLE = "a body of the documented shape that breaks a rule JSON Schema cannot state"


def key_id_param() -> Any:
    """A key id path parameter: 32 hex digits (others answer 404 unknown_key, as unknown ids)."""
    return PathParam(
        description="key id: 32 lowercase hex digits", json_schema_extra={"pattern": KEY_ID_PATTERN}
    )


def id_param(what: str) -> Any:
    return PathParam(
        description=what, max_length=64, json_schema_extra={"pattern": "^[!-~]{1,64}$"}
    )


def _move_defs(node: Any, components: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        defs = node.pop("$defs", None)
        if defs:
            for name, schema in defs.items():
                components.setdefault(name, _move_defs(schema, components))
        return {
            k: (
                v.replace("#/$defs/", "#/components/schemas/")
                if k == "$ref"
                else _move_defs(v, components)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_move_defs(v, components) for v in node]
    return node


def build(app: FastAPI) -> dict[str, Any]:
    spec = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for ops in spec.get("paths", {}).values():
        for op in ops.values():
            answers = op.get("responses", {})
            answers.pop("422", None)  # FastAPI's own (HTTPValidationError): never answered
            if "400" in answers:  # 422 is the envelope too (http_errors.rule_broken)
                answers["422"] = {**answers["400"], "description": UNPROCESSABLE}
    moved: dict[str, Any] = {}  # not `schemas` itself: the walk passes through it
    out: dict[str, Any] = _move_defs(spec, moved)
    for name, schema in moved.items():
        out["components"]["schemas"].setdefault(name, schema)
    return out


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def render(app: FastAPI) -> str:
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"
