"""Request bodies, checked before any route parses them (an ASGI middleware):

- size: refused by `Content-Length` before a byte is read, and while streaming (a chunked body is
  counted as it arrives and refused once past the limit: it is never buffered whole) -> 413;
- type: a non-empty body must be `application/json` -> 415;
- strict JSON: UTF-8, no duplicate keys, no NaN/Infinity, numbers of at most MAX_DIGITS digits,
  nesting at most MAX_DEPTH deep -> 400 `invalid_json`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pydantic_core

from tholos.gateway.http_errors import envelope

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_LIMIT = 256 * 1024  # one key, one message (64 KiB as hex), one signed request
BATCH_LIMIT = 16 * 1024 * 1024  # batches of up to 4096 items
BATCH_ROUTES = ("/v1/sign", "/v1/signing-requests/batch", "/v1/keys/import")
MAX_DIGITS = 100
MAX_DEPTH = 32


class BadJson(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise BadJson("an object has a duplicate key")
    return out


BIG = 10**MAX_DIGITS
# one decoder, made once: `json.loads(..., object_pairs_hook=...)` builds a new one per call
_DUPLICATES = json.JSONDecoder(object_pairs_hook=_pairs)


def check_json(body: bytes) -> None:
    """Raise BadJson unless `body` is strict JSON within the limits above. The first parse is
    jiter's (Rust, its own recursion limit): a deep document never reaches a recursive parser
    in C, whose stack depends on the interpreter's recursion limit."""
    try:
        value = pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise BadJson(f"not JSON: {str(exc)[:200]}") from None
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, level = stack.pop()
        if isinstance(v, dict | list):
            if level > MAX_DEPTH:
                raise BadJson(f"nested deeper than {MAX_DEPTH}")
            stack.extend((c, level + 1) for c in (v.values() if isinstance(v, dict) else v))
        elif isinstance(v, int) and not isinstance(v, bool) and not -BIG < v < BIG:
            raise BadJson(f"a number has more than {MAX_DIGITS} digits")
        elif isinstance(v, float) and not math.isfinite(v):
            raise BadJson("a number is out of range")
    try:  # duplicate keys: jiter keeps the last one silently (jiter read it: it is UTF-8)
        _DUPLICATES.decode(body.decode())
    except json.JSONDecodeError as exc:
        raise BadJson(f"not JSON: {exc.msg} at position {exc.pos}") from None


def limit_for(path: str) -> int:
    return BATCH_LIMIT if path in BATCH_ROUTES else DEFAULT_LIMIT


class BodyGuard:
    """ASGI middleware: the checks of this module, then the app with the (bounded) body."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await read_body(scope, receive, send, dict(scope.get("headers") or ()))
        if body is not None:
            await self.app(scope, replay(body, receive), send)


async def read_body(
    scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]
) -> bytes | None:
    """The request's body after the checks of this module, or None when it was refused (the
    answer is sent) or the client went away. `headers`: the request's, as a dict."""
    limit = limit_for(scope["path"])
    length = headers.get(b"content-length")
    if length is not None:
        if not length.isdigit() or len(length) > 20:
            await envelope(400, "bad_request", "Content-Length is not a number")(
                scope, receive, send
            )
            return None
        if int(length) > limit:
            await _too_large(scope, receive, send, limit)
            return None
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        msg = await receive()
        if msg["type"] != "http.request":  # the client went away
            return None
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            await _too_large(scope, receive, send, limit)
            return None
        chunks.append(chunk)
        more = bool(msg.get("more_body", False))
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if body:
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if ctype != b"application/json":
            await envelope(415, "unsupported_media_type", "the body must be application/json")(
                scope, receive, send
            )
            return None
        try:
            check_json(body)
        except BadJson as exc:
            await envelope(400, "invalid_json", f"request body: {exc}")(scope, receive, send)
            return None
    return body


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the app `body` (already read) first, then the client's messages."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    resp = envelope(413, "too_large", f"request body larger than {limit} bytes", limit=limit)
    resp.headers["Connection"] = "close"  # the rest of the body is not read
    await resp(scope, receive, send)
