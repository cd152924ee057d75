"""Console logins: a one-time challenge the user signs with their own Ed25519 key (in the browser),
then a session cookie (HttpOnly, Secure, SameSite=Strict) that expires, with a CSRF token that
every POST must echo. No user key ever reaches the server.

Sessions live in the gateway's SQLite store (a restart logs nobody out), each row holding only
the SHA-256 of its cookie token, the user and the expiry: a copy of the database opens no session.
The CSRF token is derived from the cookie token (HMAC-SHA256), so it is never stored either.
Challenges (two minutes) stay in the process: a restart costs a login attempt, nothing more."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from tholos.gateway.database import Database, SQLiteDatabase
from tholos.gateway.schema import migrate
from tholos.governance import _keys
from tholos.governance.errors import InvalidSignature

LOGIN_TAG = b"tholos/console-login/v1"
"""The browser signs LOGIN_TAG || 0 || cluster id || 0 || challenge (32 random bytes)."""
CSRF_TAG = b"tholos/console-csrf/v1"
CHALLENGE_TTL = 120.0
SESSION_TTL = 8 * 3600.0
MAX_PENDING = 1024


def login_message(cluster_id: str, challenge: bytes) -> bytes:
    """What a user signs to log in: bound to this cluster and to one challenge."""
    return LOGIN_TAG + b"\x00" + cluster_id.encode() + b"\x00" + challenge


@dataclass(frozen=True)
class Session:
    user: str
    csrf: str
    expires: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _csrf(token: str) -> str:
    return hmac.new(token.encode(), CSRF_TAG, hashlib.sha256).hexdigest()


class Sessions:
    """Challenges of this process, and sessions in `db` (the gateway's store, table
    `console_sessions` of gateway/schema.py; None: an in-memory database, for tests)."""

    def __init__(self, db: Database | None = None, ttl: float = SESSION_TTL) -> None:
        self.ttl = ttl
        if db is None:
            db = SQLiteDatabase(Path(":memory:"))
            migrate(db)
        self._db = db
        self._challenges: dict[str, tuple[str, float]] = {}

    def challenge(self, user: str) -> bytes:
        """A fresh challenge for `user`, usable once within CHALLENGE_TTL seconds."""
        self._expire()
        if len(self._challenges) >= MAX_PENDING:
            oldest = min(self._challenges, key=lambda k: self._challenges[k][1])
            del self._challenges[oldest]
        raw = secrets.token_bytes(32)
        self._challenges[raw.hex()] = (user, time.monotonic() + CHALLENGE_TTL)
        return raw

    def login(
        self, cluster_id: str, user: str, public_key: bytes, challenge_hex: str, signature: str
    ) -> tuple[str, Session]:
        """Spend the challenge and open a session if the signature verifies; ValueError names
        what is wrong (unknown or expired challenge, another user's, bad signature)."""
        entry = self._challenges.pop(challenge_hex, None)
        if entry is None or entry[1] < time.monotonic():
            raise ValueError("unknown or expired login challenge: ask for a new one")
        if entry[0] != user:
            raise ValueError("this challenge was issued to another user")
        try:
            _keys.verify(
                public_key, signature, login_message(cluster_id, bytes.fromhex(challenge_hex)), user
            )
        except InvalidSignature as exc:
            raise ValueError(str(exc)) from None
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(user, _csrf(token), now + self.ttl)
        with self._db:
            self._db.execute("DELETE FROM console_sessions WHERE expires < ?", (now,))
            self._db.execute(
                "INSERT INTO console_sessions (token_sha256, username, expires) VALUES (?, ?, ?)",
                (_digest(token), user, session.expires),
            )
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session of a cookie value, or None (unknown or expired)."""
        if not token or len(token) > 256:
            return None
        key = _digest(token)
        row = self._db.execute(
            "SELECT username, expires FROM console_sessions WHERE token_sha256 = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        if float(row[1]) < time.time():
            self._db.execute("DELETE FROM console_sessions WHERE token_sha256 = ?", (key,))
            return None
        return Session(str(row[0]), _csrf(token), float(row[1]))

    def logout(self, token: str | None) -> None:
        if token:
            self._db.execute(
                "DELETE FROM console_sessions WHERE token_sha256 = ?", (_digest(token),)
            )

    def count(self) -> int:
        """Sessions stored, live or not yet purged."""
        return int(self._db.execute("SELECT COUNT(*) FROM console_sessions").one()[0])

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(session.csrf, given)

    def _expire(self) -> None:
        now = time.monotonic()
        for k in [k for k, (_, t) in self._challenges.items() if t < now]:
            del self._challenges[k]
