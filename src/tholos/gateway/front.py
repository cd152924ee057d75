"""The one ASGI layer in front of the REST routes, in this order: the request id (bound for every
log line and node RPC, echoed in the answer), the API client (403 unknown certificate, 429 over
its rate; gateway/access.py), the body (413, 415, 400 strict JSON; gateway/request_body.py), the
client's role against the route (403), then the app; every answer is counted and timed
(gateway/observe.py). One callable instead of three middlewares and a route dependency: the
per-request work of each, without the layers between them."""

from __future__ import annotations

import time

from tholos.gateway.access import RouteRoles, admit, forbidden
from tholos.gateway.identities import ApiClients
from tholos.gateway.limits import Limiter
from tholos.gateway.observe import record
from tholos.gateway.request_body import App, Message, Receive, Scope, Send, read_body, replay
from tholos.observability import logs

REQUEST_ID = logs.REQUEST_ID_HEADER.encode()


class ApiFront:
    def __init__(self, app: App, clients: ApiClients, limiter: Limiter) -> None:
        self.app = app
        self.clients = clients
        self.limiter = limiter
        self.roles = RouteRoles()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        given = headers.get(REQUEST_ID)
        rid = logs.valid_request_id(given.decode("latin-1") if given else None)
        rid = rid or logs.new_request_id()
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                out = [(k, v) for k, v in message.get("headers", ()) if k.lower() != REQUEST_ID]
                out.append((REQUEST_ID, rid.encode()))
                message = {**message, "headers": out}
            await send(message)

        bound = logs.set_request_id(rid)
        try:
            await self._admitted(scope, receive, send_with_id, headers)
        finally:
            record(scope, status, time.perf_counter() - started)
            logs.reset_request_id(bound)

    async def _admitted(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]
    ) -> None:
        client = await admit(self.clients, self.limiter, scope, receive, send)
        if client is None:
            return
        scope.setdefault("state", {})["api_client"] = client
        body = await read_body(scope, receive, send, headers)
        if body is None:
            return
        need = self.roles.needed(scope)
        if need is not None and not client.may(need[0]):
            await forbidden(client, scope["method"], need[1])(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)
