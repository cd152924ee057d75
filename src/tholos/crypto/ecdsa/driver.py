"""In-memory drivers for threshold ECDSA (tests, benchmarks): every party in one process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tholos.crypto.ecdsa.presign import (
    Presignature,
    PresignaturePublic,
    PresignDeal,
    PresignOpen,
    PresignParticipant,
    new_session_id,
    verify_transcript,
)
from tholos.crypto.ecdsa.sign import combine, sign_share
from tholos.crypto.ecdsa.signature import EcdsaSignature
from tholos.crypto.errors import InvalidParticipants
from tholos.crypto.keys import KeyShare


def run_presign(
    key_shares: Sequence[KeyShare[Any]], session: bytes | None = None
) -> tuple[dict[int, Presignature], PresignaturePublic]:
    """Presign among the holders of `key_shares` (at least 2t-1): each party's presignature and
    the public part as the gateway would compute it from the transcript."""
    if not key_shares:
        raise InvalidParticipants("no key shares")
    session = session or new_session_id()
    ids = [ks.identifier for ks in key_shares]
    parties = {ks.identifier: PresignParticipant(ks, session, ids) for ks in key_shares}
    deals: list[PresignDeal] = []
    private: dict[int, list[Any]] = {i: [] for i in ids}
    for p in parties.values():
        deal, shares = p.round1()
        deals.append(deal)
        for j, sh in shares.items():
            private[j].append(sh)
    opens: list[PresignOpen] = [parties[i].round2(deals, private[i]) for i in ids]
    presigs = {i: parties[i].finish(opens) for i in ids}
    public = verify_transcript(key_shares[0].public, session, ids, deals, opens)
    return presigs, public


def sign(
    key_shares: Sequence[KeyShare[Any]],
    presignatures: Mapping[int, Presignature],
    public: PresignaturePublic,
    msg_hash: bytes,
    *,
    tweak: int = 0,
) -> EcdsaSignature:
    """One online round with the given shares (>= 2t-1), consuming their presignatures."""
    shares = [
        sign_share(presignatures[ks.identifier], ks, msg_hash, tweak=tweak) for ks in key_shares
    ]
    return combine(public, msg_hash, shares, tweak=tweak)
