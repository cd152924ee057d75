"""The door of the Vault-compatible routes (`/v1/transit/...`): an ASGI middleware, outside the
certificate gate, that names the caller by its `X-Vault-Token` (gateway/vault_tokens.py) instead
of its certificate, turns Vault's `LIST` method into `GET ?list=true`, and answers every error on
these paths in Vault's form `{"errors": [...]}` with the same status.

A missing, unknown, revoked or expired token is 403 `permission denied`, as in Vault; the token's
identity then meets the same role checks, rate limits and quotas as a certificate client."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

from tholos.gateway.identities import ApiClients
from tholos.gateway.request_body import App, Receive, Scope, Send
from tholos.gateway.vault_tokens import identity_client, tokens_of

PREFIX = "/v1/transit/"
MAX_TOKEN = 512


def vault_errors(status: int, body: bytes) -> bytes:
    """A tholos error envelope (or anything else) as Vault's `{"errors": [...]}`."""
    try:
        doc = json.loads(body)
    except ValueError:
        return json.dumps({"errors": [body.decode(errors="replace")[:500]]}).encode()
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
        return body
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict):
        return json.dumps({"errors": [str(doc)[:500]]}).encode()
    messages = [str(err.get("message", err.get("code", "error")))]
    for d in err.get("details") or []:
        if isinstance(d, dict):
            loc = ".".join(str(x) for x in d.get("loc", []) if x != "body")
            messages.append(f"{loc}: {d.get('msg')}" if loc else str(d.get("msg")))
    if status == 404 and err.get("code") in ("not_found", "unknown_transit_key"):
        messages = []  # Vault answers an unknown path or key with 404 and no message
    return json.dumps({"errors": messages}).encode()


def _deny(status: int = 403, message: str = "permission denied") -> Any:
    body = json.dumps({"errors": [message]}).encode()

    async def send_it(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return send_it


class VaultTokenGate:
    def __init__(self, app: App, clients: ApiClients) -> None:
        self.app = app
        self.clients = clients

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        scope = dict(scope)
        if scope.get("method") == "LIST":
            query = scope.get("query_string", b"")
            scope["method"] = "GET"
            scope["query_string"] = (query + b"&" if query else b"") + b"list=true"
        token = ""
        for k, v in scope.get("headers", []):
            if k == b"x-vault-token":
                token = v.decode("latin-1").strip()
        gw = getattr(scope["app"].state, "gateway", None)
        info = tokens_of(gw).lookup(token) if token and len(token) <= MAX_TOKEN and gw else None
        client = identity_client(self.clients, info.identity) if info is not None else None
        if client is None:
            await _deny()(scope, receive, send)
            return
        scope["state"] = {**scope.get("state", {}), "api_client": client, "vault_token": info}
        await self.app(scope, receive, self._vault_errors(send))

    @staticmethod
    def _vault_errors(send: Send) -> Send:
        """Rewrite error bodies (status >= 400) into Vault's form; others pass untouched."""
        held: dict[str, Any] = {}

        async def wrapped(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held["start"] = message
                held["body"] = b""
                return
            if "start" not in held:
                await send(message)
                return
            held["body"] += message.get("body", b"")
            if message.get("more_body"):
                return
            start = held["start"]
            body = vault_errors(start["status"], held["body"])
            headers = [
                (k, v)
                for k, v in start.get("headers", [])
                if k.lower() not in (b"content-length", b"content-type")
            ]
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return wrapped


def install(app: Any, clients: ApiClients) -> None:
    """The Vault-compatible API on `app`: the token routes, the transit routes, and this gate
    (outermost: it names the caller before the certificate gate would)."""
    from tholos.gateway import vault_tokens, vault_transit

    app.state.api_clients = clients
    app.include_router(vault_tokens.router)
    app.include_router(vault_transit.router)
    app.add_middleware(VaultTokenGate, clients=clients)
