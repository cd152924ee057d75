"""Resharing a key from a (t, n) committee to a new (t', n') committee; the group key is unchanged.

References: Desmedt-Jajodia, "Redistributing secret shares to new access structures" (1997);
Wong-Wang-Wing, "Verifiable secret redistribution" (2002).

Each participating old holder i (at least t of them, the dealers) shares its own share s_i with a
random polynomial g_i of degree t'-1, g_i(0) = s_i, broadcasting the Feldman commitment
[g_ik·G]. Everybody checks that the commitment's constant term equals i's *old verifying share*
Y_i, so a dealer cannot reshare anything but its real share (this replaces the proof of knowledge of
the DKG). New member j receives g_i(j) privately and, after the complaint round of
`tholos.crypto.dkg`, computes

    s'_j = Σ_{i in QUAL} λ_i · g_i(j),   λ_i the Lagrange coefficients at 0 over QUAL,

which is a share of Σ λ_i s_i = s on the polynomial Σ λ_i g_i of degree t'-1. The new verifying
shares are public: Y'_l = Y + Σ_{k>=1} l^k · Σ_i λ_i C_ik. Old shares are useless afterwards: the new
polynomial is independent of the old one.

Roles: an old holder that is not in the new committee only deals (`finish` returns None); a new member
that holds no old share only receives (`skip_round1` instead of `round1`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from tholos.crypto.dkg import (
    EvidenceVerifier,
    Round1Package,
    VssParticipant,
    drive_shares,
    session_id,
)
from tholos.crypto.errors import InvalidInput, InvalidParticipants, ProtocolAbort
from tholos.crypto.groups.base import Group
from tholos.crypto.hazmat.shamir import check_identifiers, check_threshold, lagrange_coefficients
from tholos.crypto.keys import KeyShare, PublicKeyPackage
from tholos.crypto.secret import SecretScalar

__all__ = ["ReshareParticipant", "run_reshare"]

E = TypeVar("E")


class ReshareParticipant(VssParticipant[E]):
    """One participant (old dealer, new member, or both) of a reshare."""

    protocol: ClassVar[str] = "reshare"

    def __init__(
        self,
        identifier: int,
        old_public: PublicKeyPackage[E],
        dealers: Sequence[int],
        new_threshold: int,
        new_participants: Sequence[int],
        context: bytes,
        *,
        key_share: KeyShare[E] | None = None,
        evidence_verifier: EvidenceVerifier | None = None,
    ) -> None:
        g: Group[E] = old_public.group
        dealer_ids = old_public.check_members(dealers, "dealers")
        new_ids = list(new_participants)
        check_identifiers(new_ids, g.order)
        new_ids.sort()
        check_threshold(new_threshold, len(new_ids))
        if identifier in dealer_ids:
            if key_share is None:
                raise InvalidInput(f"dealer {identifier} needs its old key share")
            if key_share.identifier != identifier or key_share.public != old_public:
                raise InvalidInput("the key share does not belong to this identifier and key")
        elif key_share is not None:
            raise InvalidInput(f"{identifier} is not a dealer but was given a key share")
        if not isinstance(context, bytes):
            raise InvalidInput("context must be bytes")
        sid = session_id(
            "reshare",
            g,
            context,
            old_public.threshold,
            dealer_ids,
            new_threshold,
            new_ids,
            g.serialize_element(old_public.group_public_key),
        )
        super().__init__(
            g,
            identifier,
            new_threshold,
            dealer_ids,
            new_ids,
            old_public.threshold,
            sid,
            evidence_verifier=evidence_verifier,
        )
        self._old_public = old_public
        self._key_share = key_share

    def _constant(self) -> int:
        assert self._key_share is not None
        return self._key_share.secret_share.expose()

    def _round1_problem(self, pkg: Round1Package[E]) -> str | None:
        if pkg.proof is not None:
            return "unexpected proof of knowledge"
        if not self.group.eq(pkg.commitment[0], self._old_public.verifying_shares[pkg.sender]):
            return "commitment does not open to the dealer's old verifying share"
        return None

    def _combine(self, qualified: tuple[int, ...]) -> KeyShare[E] | None:
        g = self.group
        lam = lagrange_coefficients(list(qualified), g.order)
        aggregate = [
            g.multi_mul([(self._full[d][k], lam[d]) for d in qualified])
            for k in range(self.threshold)
        ]
        # Σ λ_d·Y_d must be the group key. It is whenever everybody holds the same consistent old
        # package; a participant handed a different one (the session id binds only the group key)
        # would otherwise accept dealings of another secret.
        if not g.eq(aggregate[0], self._old_public.group_public_key):
            raise ProtocolAbort("reshare: the dealt shares do not interpolate to the group key", [])
        vshares = self._verifying_shares(aggregate, self.receivers)
        public = PublicKeyPackage(g, self.threshold, self._old_public.group_public_key, vshares)
        self.new_public = public
        if not self.is_receiver:
            return None
        s = self._qualified_share_sum(qualified, lam)
        if s == 0:
            raise ProtocolAbort("reshare: the new share is zero", [])
        return KeyShare(self.identifier, SecretScalar(s), public)


def run_reshare(
    old_shares: Mapping[int, KeyShare[E]],
    new_threshold: int,
    new_participants: Sequence[int],
    context: bytes = b"tholos-test-reshare",
) -> dict[int, KeyShare[E]]:
    """In-memory reshare: every holder in `old_shares` deals; returns the new committee's shares."""
    if not old_shares:
        raise InvalidParticipants("no old shares")
    old_public = next(iter(old_shares.values())).public
    dealers = sorted(old_shares)
    everyone = sorted(set(dealers) | set(new_participants))
    parties: dict[int, ReshareParticipant[Any]] = {
        i: ReshareParticipant(
            i,
            old_public,
            dealers,
            new_threshold,
            new_participants,
            context,
            key_share=old_shares.get(i),
        )
        for i in everyone
    }
    return drive_shares(parties)
