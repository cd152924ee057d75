"""Micro-benchmark of DiSE threshold encryption for `make bench`."""

from __future__ import annotations

import secrets
import time
from typing import Any

from tholos.crypto.dise import (
    SCHEME,
    combine_evaluations,
    decrypt,
    decrypt_begin,
    encrypt,
    evaluate,
)
from tholos.crypto.groups.ed25519 import ED25519


def bench_dise(iterations: int = 50, size: int = 1024) -> dict[str, Any]:
    """Per-operation timings (seconds, mean) for (t, n) = (2, 4) and (3, 7), one thread:
    evaluate (one node's partial with proof), combine (check t proofs + interpolate),
    encrypt_total / decrypt_total (t partials + combine + AES-GCM of `size` bytes)."""
    from tholos.crypto.hazmat.dealer import deal_key_shares

    results: dict[str, Any] = {
        "scheme": SCHEME,
        "iterations": iterations,
        "size": size,
        "cases": [],
    }
    data = secrets.token_bytes(size)
    for t, n in ((2, 4), (3, 7)):
        ks = deal_key_shares(ED25519, None, t, range(1, n + 1))[:t]
        public = ks[0].public
        ct = encrypt(ks, "bench", data)
        request = decrypt_begin(public, ct)
        t_eval = t_comb = t_enc = t_dec = 0.0
        for _ in range(iterations):
            start = time.perf_counter()
            partials = [evaluate(k, request) for k in ks]
            t_eval += time.perf_counter() - start
            start = time.perf_counter()
            combine_evaluations(public, request, partials)
            t_comb += time.perf_counter() - start
            start = time.perf_counter()
            ct = encrypt(ks, "bench", data)
            t_enc += time.perf_counter() - start
            start = time.perf_counter()
            decrypt(ks, ct)
            t_dec += time.perf_counter() - start
        per = 1.0 / iterations
        results["cases"].append(
            {
                "t": t,
                "n": n,
                "evaluate": t_eval * per / t,
                "combine": t_comb * per,
                "encrypt_total": t_enc * per,
                "decrypt_total": t_dec * per,
            }
        )
    return results
