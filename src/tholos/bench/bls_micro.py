"""Micro-benchmarks of threshold BLS for `make bench`."""

from __future__ import annotations

import time
from typing import Any

from tholos.crypto.bls.basic import verify
from tholos.crypto.bls.threshold import (
    PartialSignature,
    combine,
    combine_robust,
    public_key_bytes,
    sign_share,
    verify_share,
)
from tholos.crypto.groups.bls12381 import BLS12_381_G1, BLS12_381_G2
from tholos.crypto.hazmat.dealer import deal_key_shares


def bench_bls(iterations: int = 50) -> dict[str, Any]:
    """Per-operation timings (seconds, mean) for (t, n) = (2, 4) and (3, 7), one thread:
    sign_share (one node: hash to G2 + G2 mult), verify_share (one pairing check), combine
    (Lagrange in G2 over t partials + one batched pairing check of every partial and the result),
    combine_one_bad (slow path: the batch fails, every partial checked, culprit excluded), verify
    (final signature)."""
    results: dict[str, Any] = {
        "scheme": "bls12381-minpk-pop",
        "iterations": iterations,
        "cases": [],
    }
    for t, n in ((2, 4), (3, 7)):
        ks = deal_key_shares(BLS12_381_G1, None, t, range(1, n + 1))
        public = ks[0].public
        pk = public_key_bytes(public)
        signers = ks[:t]
        totals = dict.fromkeys(
            ("sign_share", "verify_share", "combine", "combine_one_bad", "verify"), 0.0
        )
        for it in range(iterations):
            msg = b"bench %d" % it
            start = time.perf_counter()
            partials = [sign_share(k, msg) for k in signers]
            totals["sign_share"] += (time.perf_counter() - start) / t
            start = time.perf_counter()
            verify_share(public, msg, partials[0])
            totals["verify_share"] += time.perf_counter() - start
            start = time.perf_counter()
            sig = combine(public, msg, partials)
            totals["combine"] += time.perf_counter() - start
            bad = PartialSignature(partials[0].identifier, BLS12_381_G2.base_mul(it + 2))
            extra = sign_share(ks[t], msg)
            start = time.perf_counter()
            combine_robust(public, msg, [bad, *partials[1:], extra])
            totals["combine_one_bad"] += time.perf_counter() - start
            start = time.perf_counter()
            verify(pk, msg, sig)
            totals["verify"] += time.perf_counter() - start
        results["cases"].append({"t": t, "n": n, **{k: v / iterations for k, v in totals.items()}})
    return results
