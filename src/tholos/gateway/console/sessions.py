"""Console logins: a one-time challenge the user signs with their own Ed25519 key (in the browser),
then a session cookie (HttpOnly, Secure, SameSite=Strict) that expires, with a CSRF token that
every POST must echo. The server holds only random tokens: no user key ever reaches it."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

from tholos.governance import _keys
from tholos.governance.errors import InvalidSignature

LOGIN_TAG = b"tholos/console-login/v1"
"""The browser signs LOGIN_TAG || 0 || cluster id || 0 || challenge (32 random bytes)."""
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


@dataclass
class Sessions:
    """In-memory challenges and sessions of one gateway process (a restart logs everyone out)."""

    ttl: float = SESSION_TTL
    _challenges: dict[str, tuple[str, float]] = field(default_factory=dict)
    _sessions: dict[str, Session] = field(default_factory=dict)

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
        session = Session(user, secrets.token_urlsafe(32), time.monotonic() + self.ttl)
        self._sessions[token] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session of a cookie value, or None (unknown or expired)."""
        if not token:
            return None
        s = self._sessions.get(token)
        if s is None:
            return None
        if s.expires < time.monotonic():
            del self._sessions[token]
            return None
        return s

    def logout(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(session.csrf, given)

    def _expire(self) -> None:
        now = time.monotonic()
        for k in [k for k, (_, t) in self._challenges.items() if t < now]:
            del self._challenges[k]
