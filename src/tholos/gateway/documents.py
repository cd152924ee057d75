"""Signed documents carried in request bodies (governance documents, key and committee changes):
parsed with the strict governance models, refused with 400 when off their JSON schema and 422
when they break only a rule JSON Schema cannot state; published in the OpenAPI document whole."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError, WithJsonSchema

from tholos.gateway.errors import GatewayError
from tholos.gateway.http_errors import rule_broken

M = TypeVar("M", bound=BaseModel)


def refusal(exc: ValidationError, what: str) -> GatewayError:
    """400 for a document off its schema, 422 for one that breaks only a cross-field rule."""
    errors = exc.errors()
    return GatewayError(
        422 if rule_broken(errors) else 400,
        "invalid_request",
        f"malformed {what}",
        details=[
            {"loc": [str(x) for x in e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors
        ],
    )


def parse_json(model: type[M], body: bytes | str, what: str) -> M:
    """`body` as `model`, parsed once in Rust; JSON Schema counts 2.0 as an integer, so a whole
    float is retried as the integer (the strict models refuse floats otherwise)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        refused = exc
    try:
        whole = _whole_numbers(pydantic_core.from_json(body))
        return model.model_validate_json(json.dumps(whole))
    except ValidationError as exc:
        raise refusal(exc, what) from None
    except ValueError:
        raise refusal(refused, what) from None


def parse_obj(model: type[M], obj: Any, what: str) -> M:
    """An already-decoded JSON value as `model` (strict: arrays as tuples, as from JSON)."""
    return parse_json(model, json.dumps(obj), what)


def _whole_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


def optional_document(model: type[BaseModel]) -> WithJsonSchema:
    """The JSON schema of a body field that holds `model` or null, for a field parsed as a plain
    object and checked with `parse_obj` (so a schema-valid document is never refused as 400)."""
    return WithJsonSchema(
        {"anyOf": [model.model_json_schema(mode="validation"), {"type": "null"}], "default": None}
    )


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` publishing `model` as the request body of a route that parses it itself."""
    schema = model.model_json_schema(mode="validation")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
