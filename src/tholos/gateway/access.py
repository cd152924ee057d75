"""Who may call the API: an ASGI middleware names the client by its certificate (403 if it is no
API client) and spends its rate (429 + Retry-After) before the body is read; `authorize`, a
dependency of every route, checks the client's role against the route (403)."""

from __future__ import annotations

from fastapi import Request

from tholos.gateway.http_errors import envelope
from tholos.gateway.identities import ApiClient, ApiClients, permission_for
from tholos.gateway.limits import Limiter, retry_after
from tholos.gateway.request_body import App, Receive, Scope, Send
from tholos.gateway.service import GatewayError


class ClientGate:
    def __init__(self, app: App, clients: ApiClients, limiter: Limiter) -> None:
        self.app = app
        self.clients = clients
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # a client named upstream (gateway/vault_gate.py: by its Vault token) or by certificate
        client = scope.get("state", {}).get("api_client") or self.clients.identify(scope)
        if client is None:
            await envelope(
                403, "unknown_client", "this certificate is not an API client of the gateway"
            )(scope, receive, send)
            return
        wait = self.limiter.request(client)
        if wait > 0:
            await envelope(
                429,
                "rate_limited",
                f"client {client.name!r} is over its request rate",
                {"Retry-After": retry_after(wait)},
                retry_after=retry_after(wait),
            )(scope, receive, send)
            return
        scope.setdefault("state", {})["api_client"] = client
        await self.app(scope, receive, send)


def client_of(request: Request) -> ApiClient:
    client: ApiClient = request.scope["state"]["api_client"]
    return client


async def authorize(request: Request) -> None:
    """Route dependency: 403 unless the client's role allows this route."""
    route = request.scope.get("route")
    path = route.path if route is not None else request.url.path  # the URL only when unrouted
    need = permission_for(request.method, path)
    client = client_of(request)
    if not client.may(need):
        raise GatewayError(
            403,
            "forbidden",
            f"client {client.name!r} (role {client.role}) may not call {request.method} {path}",
        )


def charge_keys(request: Request, count: int) -> None:
    """Count `count` new keys against the client's limits: 429 + Retry-After when over."""
    client = client_of(request)
    if count > client.limits.max_count:
        raise GatewayError(
            403,
            "count_over_limit",
            f"client {client.name!r} may create at most {client.limits.max_count} keys per call",
        )
    limiter: Limiter = request.app.state.limiter
    wait = limiter.keys(client, count)
    if wait > 0:
        raise GatewayError(
            429,
            "quota_exceeded",
            f"client {client.name!r} is over its quota of "
            f"{client.limits.keys_per_hour} new keys per hour",
            headers={"Retry-After": retry_after(wait)},
            retry_after=retry_after(wait),
        )
