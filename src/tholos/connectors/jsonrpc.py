"""One JSON-RPC call over HTTP (stdlib urllib), shared by the Bitcoin Core and Solana connectors.

Transport failures (unreachable, timeout, HTTP 5xx without a JSON-RPC error, no JSON) raise a
retryable `RpcFailure`; a JSON-RPC error object raises `RpcError` with the node's code and message,
for the connector to judge. Both are `ConnectorError`s.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal
from typing import Any

from tholos.connectors.base import ConnectorError


class RpcError(ConnectorError):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, method: str, code: int, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{method}: {message} (code {code})", retryable=retryable)
        self.code = code
        self.node_message = message


def split_credentials(url: str) -> tuple[str, str | None]:
    """The URL without `user:password@`, and the basic-auth header value it carried (or None)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectorError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
    if parts.username is None:
        return url, None
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    bare = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return bare, basic_auth(user, password)


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def call(
    url: str,
    method: str,
    params: Any,
    *,
    timeout: float,
    request_id: int,
    auth: str | None = None,
    version: str | None = "2.0",
) -> Any:
    """POST one request; floats in the answer are parsed as `Decimal` (amounts stay exact)."""
    envelope: dict[str, Any] = {"id": request_id, "method": method, "params": params}
    if version:
        envelope["jsonrpc"] = version
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    request = urllib.request.Request(url, data=json.dumps(envelope).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            body = exc.read()  # Bitcoin Core answers errors with HTTP 500/404 and a JSON body
        if exc.code in (401, 403):
            raise ConnectorError(
                f"{method}: the node refused the credentials (HTTP {exc.code})"
            ) from None
        if not body:
            retry = exc.code >= 500 or exc.code == 429
            raise ConnectorError(f"{method}: HTTP {exc.code}", retryable=retry) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise ConnectorError(f"{method}: node unreachable ({exc})", retryable=True) from None
    try:
        answer = json.loads(body, parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConnectorError(f"{method}: node answered no JSON", retryable=True) from None
    if not isinstance(answer, dict):
        raise ConnectorError(f"{method}: malformed answer")
    err = answer.get("error")
    if err:
        if isinstance(err, dict):
            code = err.get("code")
            raise RpcError(
                method, code if isinstance(code, int) else 0, str(err.get("message", err))
            )
        raise RpcError(method, 0, str(err))
    return answer.get("result")
