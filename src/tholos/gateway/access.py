"""Who may call the API: `admit` names the client by its certificate (403 if it is no API client)
and spends its rate (429 + Retry-After) before the body is read; `RouteRoles` finds the
permission the route needs, which the client's role must hold (403). gateway/front.py runs both."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.routing import BaseRoute

from tholos.gateway.errors import GatewayError
from tholos.gateway.http_errors import envelope
from tholos.gateway.identities import ApiClient, ApiClients, permission_for
from tholos.gateway.limits import Limiter, retry_after
from tholos.gateway.request_body import Receive, Scope, Send


async def admit(
    clients: ApiClients, limiter: Limiter, scope: Scope, receive: Receive, send: Send
) -> ApiClient | None:
    """The API client of this request, its rate spent; None when refused (403 unknown
    certificate, 429 + Retry-After over its rate: the answer is sent). A client named upstream
    (gateway/vault_gate.py: by its Vault token) counts as identified."""
    client = scope.get("state", {}).get("api_client") or clients.identify(scope)
    if client is None:
        await envelope(
            403, "unknown_client", "this certificate is not an API client of the gateway"
        )(scope, receive, send)
        return None
    wait = limiter.request(client)
    if wait > 0:
        await envelope(
            429,
            "rate_limited",
            f"client {client.name!r} is over its request rate",
            {"Retry-After": retry_after(wait)},
            retry_after=retry_after(wait),
        )(scope, receive, send)
        return None
    return client


Entry = tuple[re.Pattern[str], str | None, str]  # path regex, permission (None: no check), template


class RouteRoles:
    """The permission a request needs, from the template of the route the router will pick for
    it (`permission_for`), found the router's way (the first route whose path and method match,
    in order, included routers in place) on regular expressions prepared once per method: this
    replaced a FastAPI dependency on every route. Requests no API route serves (404, 405, static
    files) need none here; the router answers them."""

    def __init__(self) -> None:
        self._by_method: dict[str, list[Entry]] = {}
        self._routes: list[tuple[Any, Any, str | None]] | None = None

    def _table(self, app: Any, method: str) -> list[Entry]:
        table = self._by_method.get(method)
        if table is None:
            if self._routes is None:
                self._routes = list(_flat(app.router.routes))
            table = [
                (
                    regex,
                    None if template is None else permission_for(method, template),
                    template or "",
                )
                for regex, methods, template in self._routes
                if regex is not None and (methods is None or method in methods)
            ]
            self._by_method[method] = table
        return table

    def needed(self, scope: Scope) -> tuple[str, str] | None:
        """(permission, route template) for this request, or None when no API route serves it."""
        app = scope.get("app")
        if app is None:
            return None
        path = get_route_path(scope)
        for regex, need, template in self._table(app, scope["method"]):
            if regex.match(path):
                return None if need is None else (need, template)
        return None


def _flat(routes: list[BaseRoute]) -> Iterator[tuple[Any, Any, str | None]]:
    """(path regex, methods, template of an API route or None) of every route, in the router's
    order, routers included with `include_router` in their place (their routes' full paths)."""
    for r in routes:
        if isinstance(r, APIRoute):
            yield r.path_regex, r.methods, r.path
        elif hasattr(r, "effective_route_contexts"):  # fastapi's included router
            for c in r.effective_route_contexts():
                if isinstance(c.original_route, APIRoute):
                    yield c.path_regex, c.methods, c.path  # the full path, prefix included
                else:
                    inner = c.starlette_route or c.original_route
                    yield getattr(inner, "path_regex", None), getattr(inner, "methods", None), None
        else:
            yield getattr(r, "path_regex", None), getattr(r, "methods", None), None


def forbidden(client: ApiClient, method: str, template: str) -> JSONResponse:
    """403: the client's role does not allow this route."""
    return envelope(
        403,
        "forbidden",
        f"client {client.name!r} (role {client.role}) may not call {method} {template}",
    )


def client_of(request: Request) -> ApiClient:
    client: ApiClient = request.scope["state"]["api_client"]
    return client


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
