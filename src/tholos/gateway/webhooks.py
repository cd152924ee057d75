"""Webhook subscriptions and deliveries: every event is sent to each subscription that wants
it, signed, retried with exponential backoff, and every attempt logged.

A delivery is an HTTP POST of the event's JSON body with
    X-Tholos-Event: the event type          X-Tholos-Event-Id: the event id
    X-Tholos-Timestamp: unix seconds        X-Tholos-Signature: ed25519=<hex>
where the signature is Ed25519 (libsodium) by the gateway's webhook key over
`timestamp || "." || body`; receivers check it with the public key (`GET /v1/webhooks/key`)
and refuse old timestamps, so no shared secret exists to leak. The key is never in the database
(gateway/webhook_key.py keeps it in a key file of its own). A 2xx answer delivers;
anything else (or no answer) is retried after 2**attempt seconds (capped), up to
MAX_ATTEMPTS, then the delivery is `failed`.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from nacl.signing import SignedMessage, SigningKey, VerifyKey

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (
    webhook_id TEXT PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, type TEXT NOT NULL, body TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    webhook_id TEXT NOT NULL, event_id TEXT NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL, next_at REAL NOT NULL, PRIMARY KEY (webhook_id, event_id)
);
CREATE TABLE IF NOT EXISTS delivery_log (
    webhook_id TEXT NOT NULL, event_id TEXT NOT NULL, attempt INTEGER NOT NULL, at REAL NOT NULL,
    http_status INTEGER, error TEXT
);
"""
EVENT_TYPES = frozenset({"deposit.seen", "deposit.confirmed"})
MAX_ATTEMPTS = 8
MAX_BACKOFF = 3600.0
Post = Callable[[str, bytes, dict[str, str]], int]
"""Send one delivery: (url, body, headers) -> HTTP status; raises httpx.HTTPError without one."""


class Signer(Protocol):
    """What signs deliveries: a nacl SigningKey, or the gateway's WebhookKey."""

    @property
    def verify_key(self) -> VerifyKey: ...

    def sign(self, message: bytes) -> SignedMessage: ...


def http_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    return httpx.post(url, content=body, headers=headers, timeout=10.0).status_code


@dataclass(frozen=True)
class Webhook:
    webhook_id: str
    url: str
    events: tuple[str, ...]
    created_at: float

    def summary(self) -> dict[str, Any]:
        return {**self.__dict__, "events": list(self.events)}


def check_url(url: str) -> str:
    """http(s) URLs only; the message names what is wrong."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("url: an http:// or https:// URL with a host")
    return url


class Webhooks:
    """Subscriptions, events and deliveries in one SQLite connection."""

    def __init__(
        self, db: sqlite3.Connection, post: Post = http_post, key: Signer | None = None
    ) -> None:
        """`key`: the gateway's webhook key (gateway/webhook_key.py); None, a key of this
        object's own that nothing stores (in-process tests)."""
        self.db = db
        self.post = post
        self.db.executescript(SCHEMA)
        self._key: Signer = SigningKey.generate() if key is None else key

    @property
    def public_key(self) -> bytes:
        return bytes(self._key.verify_key)

    @property
    def signer(self) -> Signer:
        return self._key

    # -- subscriptions ----------------------------------------------------------------------
    def add(self, url: str, events: Sequence[str]) -> Webhook:
        unknown = sorted(set(events) - EVENT_TYPES)
        if not events or unknown:
            raise ValueError(f"events: one or more of {sorted(EVENT_TYPES)} (not {unknown})")
        hook = Webhook(
            secrets.token_hex(16), check_url(url), tuple(sorted(set(events))), time.time()
        )
        with self.db:
            self.db.execute(
                "INSERT INTO webhooks VALUES (?,?,?,?)",
                (hook.webhook_id, hook.url, ",".join(hook.events), hook.created_at),
            )
        return hook

    def subscriptions(self) -> list[Webhook]:
        rows = self.db.execute("SELECT * FROM webhooks ORDER BY created_at").fetchall()
        return [Webhook(r[0], r[1], tuple(r[2].split(",")), r[3]) for r in rows]

    def get(self, webhook_id: str) -> Webhook | None:
        return next((h for h in self.subscriptions() if h.webhook_id == webhook_id), None)

    def remove(self, webhook_id: str) -> bool:
        with self.db:
            gone = self.db.execute("DELETE FROM webhooks WHERE webhook_id = ?", (webhook_id,))
            self.db.execute("DELETE FROM deliveries WHERE webhook_id = ?", (webhook_id,))
        return gone.rowcount > 0

    # -- events and deliveries ----------------------------------------------------------------
    def emit(self, event_type: str, data: dict[str, Any], event_id: str, now: float) -> bool:
        """Record an event (once per id) and queue it for every subscription that wants it."""
        body = json.dumps(
            {"id": event_id, "type": event_type, "created_at": int(now), "data": data},
            sort_keys=True,
            separators=(",", ":"),
        )
        with self.db:
            new = self.db.execute(
                "INSERT OR IGNORE INTO events VALUES (?,?,?,?)", (event_id, event_type, body, now)
            ).rowcount
            if not new:
                return False
            for hook in self.subscriptions():
                if event_type in hook.events:
                    self.db.execute(
                        "INSERT INTO deliveries VALUES (?,?,'pending',0,?)",
                        (hook.webhook_id, event_id, now),
                    )
        return True

    def headers(self, event_type: str, event_id: str, body: bytes, now: float) -> dict[str, str]:
        stamp = str(int(now))
        signature = self._key.sign(stamp.encode() + b"." + body).signature
        return {
            "content-type": "application/json",
            "x-tholos-event": event_type,
            "x-tholos-event-id": event_id,
            "x-tholos-timestamp": stamp,
            "x-tholos-signature": "ed25519=" + signature.hex(),
        }

    def deliver_due(self, now: float) -> int:
        """One attempt for every delivery due at `now`; returns how many were delivered."""
        due = self.db.execute(
            "SELECT d.webhook_id, d.event_id, d.attempts, w.url, e.type, e.body FROM deliveries d"
            " JOIN webhooks w USING (webhook_id) JOIN events e USING (event_id)"
            " WHERE d.status = 'pending' AND d.next_at <= ? ORDER BY d.next_at",
            (now,),
        ).fetchall()
        delivered = 0
        for webhook_id, event_id, attempts, url, event_type, body in due:
            attempt = attempts + 1
            status: int | None = None
            error = ""
            raw = body.encode()
            try:
                status = self.post(url, raw, self.headers(event_type, event_id, raw, now))
            except httpx.HTTPError as exc:
                error = f"{exc.__class__.__name__}: {exc}"[:500]
            ok = status is not None and 200 <= status < 300
            if not ok and not error:
                error = f"HTTP {status}"
            state = "delivered" if ok else ("failed" if attempt >= MAX_ATTEMPTS else "pending")
            retry_at = now + min(2.0**attempt, MAX_BACKOFF)
            with self.db:
                self.db.execute(
                    "UPDATE deliveries SET status = ?, attempts = ?, next_at = ?"
                    " WHERE webhook_id = ? AND event_id = ?",
                    (state, attempt, retry_at, webhook_id, event_id),
                )
                self.db.execute(
                    "INSERT INTO delivery_log VALUES (?,?,?,?,?,?)",
                    (webhook_id, event_id, attempt, now, status, error or None),
                )
            delivered += ok
        return delivered

    def deliveries(self, webhook_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The delivery log of a subscription, newest first."""
        rows = self.db.execute(
            "SELECT l.event_id, e.type, l.attempt, l.at, l.http_status, l.error, d.status"
            " FROM delivery_log l JOIN events e USING (event_id)"
            " LEFT JOIN deliveries d ON d.webhook_id = l.webhook_id AND d.event_id = l.event_id"
            " WHERE l.webhook_id = ? ORDER BY l.at DESC, l.attempt DESC LIMIT ?",
            (webhook_id, limit),
        ).fetchall()
        keys = ("event_id", "type", "attempt", "at", "http_status", "error", "delivery")
        return [dict(zip(keys, r, strict=True)) for r in rows]
