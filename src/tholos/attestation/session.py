"""One attestation session: every verifier (each node, and the gateway) contributes a fresh random
challenge, and every node attests to the digest of all of them. A verifier accepts evidence only
for a session that holds a challenge it issued and has not used before, so evidence from an
earlier session (or made for another verifier's session) cannot be replayed to it, while one
piece of evidence per node still serves every verifier of the session.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tholos.attestation.providers import (
    Attestation,
    AttestationError,
    AttestationProvider,
    VerifiedAttestation,
)

SESSION_DOMAIN = b"tholos-attestation-session-v1"
CHALLENGE_BYTES = 32
CHALLENGE_TTL = 120.0  # seconds an issued challenge stays usable
CHALLENGES_KEPT = 16  # outstanding challenges per verifier (older ones are dropped)


@dataclass(frozen=True)
class Session:
    """The challenges of one session: one per node (by node id), one of the gateway."""

    challenges: Mapping[int, bytes]
    gateway: bytes

    def nonce(self) -> bytes:
        """The 32 bytes every node's evidence of this session is bound to."""
        h = hashlib.sha256(SESSION_DOMAIN)
        h.update(len(self.gateway).to_bytes(2, "big") + self.gateway)
        for node_id in sorted(self.challenges):
            c = self.challenges[node_id]
            h.update(node_id.to_bytes(4, "big") + len(c).to_bytes(2, "big") + c)
        return h.digest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "challenges": {str(i): c.hex() for i, c in sorted(self.challenges.items())},
            "gateway": self.gateway.hex(),
        }

    @classmethod
    def from_dict(cls, d: Any) -> Session:
        try:
            raw = d["challenges"]
            challenges = {int(i): bytes.fromhex(str(c)) for i, c in dict(raw).items()}
            gateway = bytes.fromhex(str(d["gateway"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise AttestationError(f"malformed attestation session: {exc}") from None
        for who, c in [("gateway", gateway), *((f"node {i}", c) for i, c in challenges.items())]:
            if len(c) != CHALLENGE_BYTES:
                raise AttestationError(
                    f"session challenge of {who}: {len(c)} bytes, want {CHALLENGE_BYTES}"
                )
        return cls(challenges, gateway)


class Challenges:
    """The challenges one verifier issued and has not used yet; each is good for one session."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._open: OrderedDict[bytes, float] = OrderedDict()

    def issue(self) -> bytes:
        c = os.urandom(CHALLENGE_BYTES)
        self._open[c] = self._clock() + CHALLENGE_TTL
        while len(self._open) > CHALLENGES_KEPT:
            self._open.popitem(last=False)
        return c

    def take(self, challenge: bytes) -> None:
        """Use `challenge` up; AttestationError if this verifier never issued it, already used it
        or it expired (a replayed or stale session)."""
        expires = self._open.pop(challenge, None)
        if expires is None:
            raise AttestationError("the session does not hold a challenge this verifier issued")
        if expires < self._clock():
            raise AttestationError("the session's challenge of this verifier has expired")


class Verifiers:
    """The providers a verifier can check evidence with, by kind (software always; SEV-SNP and
    TDX once the operator pinned their vendor roots)."""

    def __init__(self, providers: Mapping[str, AttestationProvider]) -> None:
        self._by_kind = dict(providers)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_kind))

    def verify(
        self, attestation: Attestation, *, nonce: bytes, node_public_key: bytes
    ) -> VerifiedAttestation:
        provider = self._by_kind.get(attestation.kind)
        if provider is None:
            raise AttestationError(
                f"cannot verify {attestation.kind} evidence here: no verifier configured "
                f"(configured: {', '.join(self.kinds) or 'none'})"
            )
        return provider.verify(attestation, nonce=nonce, node_public_key=node_public_key)
