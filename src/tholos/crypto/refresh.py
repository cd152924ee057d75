"""Proactive share refresh: zero-secret resharing among the current holders.

References: Herzberg-Jarecki-Krawczyk-Yung, "Proactive secret sharing" (CRYPTO 1995);
ZcashFoundation/frost `frost-core/src/keys/refresh.rs` (refresh via a DKG whose constant terms are
zero, the zero commitment not being sent).

Every participating holder i deals a random polynomial d_i with d_i(0) = 0 and degree t-1, commits to
its coefficients 1..t-1 (the constant's commitment is the identity and is omitted), and sends d_i(j)
to every holder j. After the same complaint round as the DKG (`tholos.crypto.dkg`), every holder
sets s'_j = s_j + Σ_{i in QUAL} d_i(j). The group key is unchanged, every verifying share changes
(Y'_l = Y_l + Σ_i D_i(l)) and old shares mixed with new ones interpolate to garbage: an attacker must
collect t shares within one refresh period.

Holders not taking part still get a new verifying share in the public package; their old share no
longer matches it, and they recover a current one with `tholos.crypto.repair`.
The caller deletes the old share only after the new one is durably stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, TypeVar

from tholos.crypto.dkg import (
    EvidenceVerifier,
    Round1Package,
    VssParticipant,
    drive_shares,
    session_id,
)
from tholos.crypto.errors import InvalidInput, InvalidParticipants, ProtocolAbort
from tholos.crypto.keys import KeyShare, PublicKeyPackage
from tholos.crypto.secret import SecretScalar

__all__ = ["RefreshParticipant", "run_refresh"]

E = TypeVar("E")


class RefreshParticipant(VssParticipant[E]):
    """One holder in a refresh; the same four calls as `DkgParticipant` (round1, round2, round3,
    finish), `finish` returning the refreshed KeyShare."""

    protocol: ClassVar[str] = "refresh"

    def __init__(
        self,
        key_share: KeyShare[E],
        context: bytes,
        participants: Sequence[int] | None = None,
        *,
        evidence_verifier: EvidenceVerifier | None = None,
    ) -> None:
        public = key_share.public
        ids = public.check_members(public.identifiers if participants is None else participants)
        if key_share.identifier not in ids:
            raise InvalidParticipants(f"identifier {key_share.identifier} is not a participant")
        if not isinstance(context, bytes):
            raise InvalidInput("context must be bytes")
        g = public.group
        sid = session_id(
            "refresh",
            g,
            context,
            public.threshold,
            ids,
            public.identifiers,
            g.serialize_element(public.group_public_key),
        )
        super().__init__(
            g,
            key_share.identifier,
            public.threshold,
            ids,
            ids,
            public.threshold,
            sid,
            evidence_verifier=evidence_verifier,
        )
        self._key_share = key_share

    def _constant(self) -> int:
        return 0

    def _sent_commitment(self, full: list[E]) -> tuple[E, ...]:
        return tuple(full[1:])

    def _round1_problem(self, pkg: Round1Package[E]) -> str | None:
        if pkg.proof is not None:
            return "unexpected proof of knowledge"
        return None

    def _combine(self, qualified: tuple[int, ...]) -> KeyShare[E]:
        g = self.group
        old = self._key_share.public
        delta = self._qualified_share_sum(qualified)
        aggregate = [g.identity()] + [
            g.sum(self._full[d][k] for d in qualified) for k in range(1, self.threshold)
        ]
        vshares = self._verifying_shares(aggregate, old.identifiers, base=old.verifying_shares)
        public = PublicKeyPackage(g, old.threshold, old.group_public_key, vshares)
        s = (self._key_share.secret_share.expose() + delta) % g.order
        if s == 0:
            raise ProtocolAbort("refresh: the new share is zero", [])
        return KeyShare(self.identifier, SecretScalar(s), public)


def run_refresh(
    shares: Mapping[int, KeyShare[E]], context: bytes = b"tholos-test-refresh"
) -> dict[int, KeyShare[E]]:
    """In-memory refresh among the holders of `shares` (tests)."""
    ids = sorted(shares)
    return drive_shares({i: RefreshParticipant(ks, context, ids) for i, ks in shares.items()})
