"""`Idempotency-Key` on the POSTs that create keys, signatures, wallets and governed requests
(and approve, sign or cancel them): the first answer (any status below 500 except 429) is stored
per (API client, key) with a hash of the request, and a retry with the same key and the same
request gets that answer again (header `Idempotent-Replayed: true`) instead of a second DKG or
signature. The same key with another request is 422 `idempotency_key_reused`; a retry while the
first is still running is 409 `idempotency_in_progress`. Answers are kept for 24 hours in the
gateway's database: on a shared PostgreSQL store a retry on another gateway gets the first
gateway's answer. A key generation or plain signature whose gateway stopped before answering
stays "in progress" (running it again could make a second key or signature); a governed request
runs again after RERUN_AFTER seconds (the nodes sign each request id once)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from typing import Any

from tholos.gateway.database import Database, StoreUnavailable
from tholos.gateway.http_errors import envelope
from tholos.gateway.request_body import App, Message, Receive, Scope, Send

HEADER = b"idempotency-key"
KEEP_SECONDS = 24 * 3600
KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
ROUTES = re.compile(
    r"^/v1/(keys|keys/import|keys/[0-9a-f]{32}/sign|sign|wallets"
    r"|signing-requests(/batch|/[^/]{1,64}/(approvals|sign|cancel))?)$"
)
# Governed requests: the nodes sign each request id at most once, so a request whose gateway
# died while running it (its key "running" for longer than this) may run again on another.
RERUN = re.compile(r"^/v1/signing-requests(/batch|/[^/]{1,64}/(approvals|sign|cancel))?$")
RERUN_AFTER = 60.0


log = logging.getLogger("tholos.gateway")
FINISH_TRIES = 60  # storing the answer after a database outage: every 0.5 s for 30 s


class IdempotencyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def begin(
        self, client: str, key: str, digest: str, rerun_after: float | None = None
    ) -> tuple[str, Any]:
        """("new", None) | ("replay", (status, body)) | ("reused", None) | ("running", None).

        The claim is one INSERT that only the first of any number of gateways wins. With
        `rerun_after`, a request "running" for longer is taken over (one UPDATE: one winner)."""
        now = time.time()
        with self.db.transaction():
            self.db.execute("DELETE FROM idempotency WHERE created < ?", (now - KEEP_SECONDS,))
            won = self.db.execute(
                "INSERT INTO idempotency VALUES (?,?,?,NULL,NULL,?) "
                "ON CONFLICT (client, key) DO NOTHING",
                (client, key, digest, now),
            ).rowcount
            if won == 1:
                return "new", None
            row = self.db.execute(
                "SELECT request_hash, status, body FROM idempotency WHERE client = ? AND key = ?",
                (client, key),
            ).fetchone()
        if row is None:  # expired and deleted between the statements: the retry runs it
            return self.begin(client, key, digest, rerun_after)
        if row[0] != digest:
            return "reused", None
        if row[1] is None:
            if rerun_after is not None and self._take_over(client, key, now, now - rerun_after):
                return "new", None
            return "running", None
        return "replay", (int(row[1]), bytes(row[2]))

    def _take_over(self, client: str, key: str, now: float, started_before: float) -> bool:
        return (
            self.db.execute(
                "UPDATE idempotency SET created = ? WHERE client = ? AND key = ? "
                "AND status IS NULL AND created < ?",
                (now, client, key, started_before),
            ).rowcount
            == 1
        )

    def finish(self, client: str, key: str, status: int | None, body: bytes) -> None:
        """Keep the answer; `status` None forgets the key (a 5xx or 429: the retry runs)."""
        with self.db:
            if status is None:
                self.db.execute(
                    "DELETE FROM idempotency WHERE client = ? AND key = ?", (client, key)
                )
            else:
                self.db.execute(
                    "UPDATE idempotency SET status = ?, body = ? WHERE client = ? AND key = ?",
                    (status, body, client, key),
                )


def store_of(gw: Any) -> IdempotencyStore:
    store: IdempotencyStore | None = getattr(gw, "idempotency", None)
    if store is None:
        store = IdempotencyStore(gw.store.db)
        gw.idempotency = store
    return store


class Idempotency:
    """ASGI middleware inside the client gate (it needs the caller's name)."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = dict(scope.get("headers", [])).get(HEADER) if scope["type"] == "http" else None
        if key is None or scope["method"] != "POST" or not ROUTES.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        text = key.decode("latin-1")
        if not KEY.match(text):
            await envelope(
                400, "bad_idempotency_key", "Idempotency-Key: 1-255 printable ASCII characters"
            )(scope, receive, send)
            return
        client = scope["state"]["api_client"].name
        chunks: list[bytes] = []
        while True:  # the body is bounded by BodyGuard, outside this middleware
            m = await receive()
            chunks.append(m.get("body", b""))
            if not m.get("more_body"):
                break
        body = b"".join(chunks)
        digest = hashlib.sha256(scope["path"].encode() + b"\0" + body).hexdigest()
        store = store_of(scope["app"].state.gateway)
        try:
            rerun = RERUN_AFTER if RERUN.match(scope["path"]) else None
            state, stored = store.begin(client, text, digest, rerun)
        except StoreUnavailable as exc:
            await envelope(exc.status, exc.code, str(exc))(scope, receive, send)
            return
        if state == "reused":
            await envelope(
                422, "idempotency_key_reused", "this Idempotency-Key was used for another request"
            )(scope, receive, send)
            return
        if state == "running":
            await envelope(
                409,
                "idempotency_in_progress",
                "the first request with this key is still running (or its gateway stopped "
                "before answering: it is never run twice)",
            )(scope, receive, send)
            return
        if state == "replay":
            status, answer = stored
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(answer)).encode()),
                        (b"idempotent-replayed", b"true"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": answer})
            return
        sent = False

        async def replay_body() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        seen: dict[str, Any] = {"status": 500, "body": b""}
        held: list[Message] = []

        async def keep(message: Message) -> None:
            """Hold the answer until it is stored: a retry (on any gateway) that comes after
            the client saw it must find it."""
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body":
                seen["body"] += message.get("body", b"")
            held.append(message)

        try:
            await self.app(scope, replay_body, keep)
        finally:
            status = int(seen["status"])
            keepable = status < 500 and status != 429
            await _finish(store, client, text, status if keepable else None, seen["body"])
        for message in held:
            await send(message)


async def _finish(
    store: IdempotencyStore, client: str, key: str, status: int | None, body: bytes
) -> None:
    """Store the answer, waiting out a database outage: a key left "running" would answer 409
    to every retry of a request that did finish."""
    for attempt in range(FINISH_TRIES):
        try:
            store.finish(client, key, status, body)
            return
        except StoreUnavailable:
            if attempt == FINISH_TRIES - 1:
                log.error("idempotency key of %s not recorded: the database stayed down", client)
                return
            await asyncio.sleep(0.5)
