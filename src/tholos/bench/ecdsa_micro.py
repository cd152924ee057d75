"""Micro-benchmark of threshold ECDSA (presignatures, online signing) for `make bench`."""

from __future__ import annotations

import time
from typing import Any

from tholos.crypto.ecdsa.driver import run_presign
from tholos.crypto.ecdsa.sign import sign_share


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
