"""One error envelope for every error the REST API answers, with stable codes and no internals:

    {"error": {"code": "unknown_key", "message": "unknown key '…'", "details": [...]?, ...}}

Validation errors, unknown routes (404), wrong methods (405), GatewayError, oversize bodies (413),
rate limits (429) and unexpected exceptions (500 `internal`, logged, never echoed) all use it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from tholos.gateway.errors import GatewayError

log = logging.getLogger("tholos.gateway")

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal",
    502: "bad_node_reply",
    503: "unavailable",
}


class ErrorBody(BaseModel):
    code: str = Field(description="stable, machine-readable (e.g. unknown_key, invalid_request)")
    message: str = Field(description="for people; never carries secrets or internals")
    details: list[dict[str, Any]] | None = Field(
        default=None, description="invalid_request: what was wrong, where"
    )
    model_config = {"extra": "allow"}


class ErrorEnvelope(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: ErrorBody


def envelope(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": {"code": code, "message": message, **extra}},
        headers=headers,
    )


SCHEMA_ERRORS = frozenset(
    {
        "missing",
        "extra_forbidden",
        "string_type",
        "int_type",
        "int_from_float",
        "int_parsing",
        "int_parsing_size",
        "float_parsing",
        "bool_parsing",
        "set_type",
        "frozen_set_type",
        "float_type",
        "bool_type",
        "list_type",
        "tuple_type",
        "dict_type",
        "model_type",
        "model_attributes_type",
        "none_required",
        "literal_error",
        "enum",
        "string_pattern_mismatch",
        "string_too_short",
        "string_too_long",
        "too_short",
        "too_long",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "union_tag_invalid",
        "union_tag_not_found",
        "json_invalid",
        "json_type",
    }
)
"""Pydantic error types of what JSON Schema states (types, required and unknown fields, patterns,
lengths, bounds). A body that breaks one is 400; one that breaks only other rules (cross-field
validators, a public key that must be a curve point) has the documented shape: 422."""


def rule_broken(errors: Any) -> bool:
    """Whether pydantic `errors` are all of rules the schema cannot state (so: 422, not 400)."""
    return all(e.get("type") not in SCHEMA_ERRORS for e in errors)


def _where(loc: tuple[Any, ...]) -> list[str]:
    return [str(x) for x in loc]


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """Pydantic errors as [{"loc", "msg"}]: never the input (it may be a secret or huge)."""
    return [{"loc": _where(tuple(e.get("loc", ()))), "msg": str(e.get("msg"))} for e in errors]


def install(app: FastAPI) -> None:
    """Register the envelope for every kind of error on `app`."""

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        headers = exc.extra.pop("headers", None) if "headers" in exc.extra else None
        return envelope(exc.status, exc.code, str(exc), headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = validation_details(exc.errors())
        if any(e["msg"].startswith("JSON decode error") for e in errs) or any(
            e["loc"][:1] == ["body"] and "json_invalid" in str(e) for e in errs
        ):
            return envelope(400, "invalid_json", "request body is not valid JSON")
        too_large = any(
            "at most" in e["msg"] and e["loc"][-1:] in (["message"], ["alpha"]) for e in errs
        )
        if too_large:
            return envelope(413, "too_large", "request validation failed", details=errs)
        if rule_broken(exc.errors()):
            return envelope(
                422, "invalid_request", "the request breaks a rule of its fields", details=errs
            )
        return envelope(400, "invalid_request", "request validation failed", details=errs)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "error")
        if exc.status_code == 400:  # starlette/fastapi: a body that does not parse
            code, message = "invalid_json", "request body is not valid JSON"
        elif exc.status_code == 404:
            message = f"no such route: {request.method} {request.url.path[:200]}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path[:200]}"
            allow = allowed_methods(request)
            return envelope(405, code, message, {"Allow": ", ".join(allow)}, allowed=allow)
        else:
            message = code.replace("_", " ")
        return envelope(exc.status_code, code, message, dict(exc.headers or {}) or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path[:200])
        return envelope(500, "internal", "internal error (logged at the gateway)")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    matched = [
        r
        for r in request.app.routes
        if getattr(r, "methods", None)
        and getattr(r, "include_in_schema", True)
        and r.matches({**request.scope, "method": "GET"})[0] != Match.NONE
    ]
    literal = [r for r in matched if "{" not in r.path]  # /v1/keys/import, not /v1/keys/{key_id}
    out: set[str] = {m for r in (literal or matched) for m in r.methods}
    return sorted(out - {"HEAD"})


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for these error statuses, all with the envelope."""
    return {
        s: {"model": ErrorEnvelope, "description": HTTP_CODES.get(s, "error").replace("_", " ")}
        for s in statuses
    }
