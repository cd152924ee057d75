"""Micro-benchmark of FROST per-operation costs (`make bench` prints the table).

Run directly: `python -m tholos.bench.frost_micro [iterations]`.
Key material comes from a trusted-dealer Shamir sharing (benchmark only).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from tholos.crypto.frost.aggregate import aggregate
from tholos.crypto.frost.bip340 import FROST_BIP340
from tholos.crypto.frost.ciphersuite import Ciphersuite
from tholos.crypto.frost.round1 import commit
from tholos.crypto.frost.round2 import sign
from tholos.crypto.frost.signing_package import SigningPackage
from tholos.crypto.frost.suites import FROST_ED25519_SHA512, FROST_SECP256K1_SHA256
from tholos.crypto.frost.tweak import signing_public_key
from tholos.crypto.hazmat.dealer import deal_key_shares
from tholos.crypto.keys import KeyShare


def _dealer(suite: Ciphersuite[Any], t: int, n: int) -> tuple[list[KeyShare[Any]], Any]:
    key_shares = deal_key_shares(suite.group, None, t, range(1, n + 1))
    return key_shares, key_shares[0].public


def bench_frost(
    suite: Ciphersuite[Any],
    t: int,
    n: int,
    iterations: int = 200,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """Median-free simple timing: mean microseconds per operation over `iterations` signatures.

    Keys: commit_us (one signer's round 1), sign_us (one signer's round 2, incl. the group
    commitment), aggregate_us (coordinator, incl. the cheap verification of the result), verify_us
    (suite.verify from bytes), package_parse_us (to_dict + validated from_dict of the signing package,
    which each signer does on receipt; not in the total), cpu_per_signature_us (t commits + t signs + aggregate) and
    signatures_per_s_one_core (its inverse). `clock`: wall time by default; time.process_time
    gives CPU time, which a loaded machine does not inflate."""
    key_shares, public = _dealer(suite, t, n)
    signers = key_shares[:t]
    pk = signing_public_key(suite, public)
    msg = b"\x42" * 32
    t_commit = t_sign = t_agg = t_verify = t_parse = 0.0
    pc = clock
    for it in range(iterations):
        message = msg + it.to_bytes(4, "big")
        a = pc()
        round1 = [commit(suite, ks) for ks in signers]
        b = pc()
        package = SigningPackage(
            {ks.identifier: c for ks, (_, c) in zip(signers, round1, strict=True)}, message
        )
        shares = {
            ks.identifier: sign(suite, package, nonces, ks)
            for ks, (nonces, _) in zip(signers, round1, strict=True)
        }
        c = pc()
        sig = aggregate(suite, package, shares, public)
        d = pc()
        suite.verify(message, sig, pk)
        e = pc()
        SigningPackage.from_dict(package.to_dict(), suite)  # what each signer does on receipt
        f = pc()
        t_parse += f - e
        t_commit += b - a
        t_sign += c - b
        t_agg += d - c
        t_verify += e - d
    us = 1e6 / iterations
    per_sig = (t_commit + t_sign + t_agg) * us
    return {
        "suite": suite.name,
        "t": t,
        "n": n,
        "iterations": iterations,
        "commit_us": t_commit * us / t,
        "sign_us": t_sign * us / t,
        "aggregate_us": t_agg * us,
        "verify_us": t_verify * us,
        "package_parse_us": t_parse * us,
        "cpu_per_signature_us": per_sig,
        "signatures_per_s_one_core": 1e6 / per_sig,
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'suite':<28}{'t/n':>6}{'commit µs':>11}{'sign µs':>10}{'aggregate µs':>14}"
        f"{'verify µs':>11}{'parse µs':>10}{'CPU/sig µs':>12}{'sig/s/core':>12}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['suite']:<28}{str(r['t']) + '/' + str(r['n']):>6}{r['commit_us']:>11.0f}"
            f"{r['sign_us']:>10.0f}{r['aggregate_us']:>14.0f}{r['verify_us']:>11.0f}"
            f"{r['package_parse_us']:>10.0f}"
            f"{r['cpu_per_signature_us']:>12.0f}{r['signatures_per_s_one_core']:>12.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    iterations = int(args[0]) if args else 200
    rows = [
        bench_frost(suite, t, n, iterations)
        for suite in (FROST_ED25519_SHA512, FROST_SECP256K1_SHA256, FROST_BIP340)
        for t, n in ((2, 4), (3, 7))
    ]
    print(format_table(rows))


if __name__ == "__main__":
    main()
