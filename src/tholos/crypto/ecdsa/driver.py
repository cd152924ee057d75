"""In-memory drivers for threshold ECDSA (tests, benchmarks): every party in one process."""

from __future__ import annotations

import time
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


def bench_ecdsa(iterations: int = 20) -> dict[str, Any]:
    """Per-operation timings (seconds, mean) for (t, n) = (2, 4) and (3, 7), one thread.

    - presign_total: one presignature among all n parties (2t-1 are needed; with n, online signing
      tolerates n-(2t-1) failed parties), every party's work summed;
    - presign_per_party: presign_total / n (what one node spends);
    - sign_share: one party's online work; combine: the gateway's check of 2t-1 shares,
      interpolation, low-S and final libsecp256k1 verification;
    - sign_online_total: 2t-1 sign_share + combine (the latency floor without network)."""
    import hashlib

    from tholos.crypto.ecdsa.sign import combine as _combine
    from tholos.crypto.groups.secp256k1 import SECP256K1
    from tholos.crypto.hazmat.dealer import deal_key_shares

    results: dict[str, Any] = {"scheme": "ecdsa-secp256k1", "iterations": iterations, "cases": []}
    for t, n in ((2, 4), (3, 7)):
        ks = deal_key_shares(SECP256K1, None, t, range(1, n + 1))
        signers = ks[: 2 * t - 1]
        run_presign(ks)  # warm-up
        t_pre = t_share = t_comb = 0.0
        for it in range(iterations):
            start = time.perf_counter()
            presigs, public = run_presign(ks)
            t_pre += time.perf_counter() - start
            digest = hashlib.sha256(b"bench %d" % it).digest()
            start = time.perf_counter()
            shares = [sign_share(presigs[k.identifier], k, digest) for k in signers]
            t_share += time.perf_counter() - start
            start = time.perf_counter()
            _combine(public, digest, shares)
            t_comb += time.perf_counter() - start
        per = 1.0 / iterations
        results["cases"].append(
            {
                "t": t,
                "n": n,
                "presign_total": t_pre * per,
                "presign_per_party": t_pre * per / n,
                "sign_share": t_share * per / len(signers),
                "combine": t_comb * per,
                "sign_online_total": (t_share + t_comb) * per,
            }
        )
    return results
