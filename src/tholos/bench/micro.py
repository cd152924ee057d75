"""`make bench`: per-operation costs of tholos' threshold protocols beside single-key baselines.

Single thread, mean µs per operation; the host line says where it ran. The cluster benchmark
(`tholos bench`) measures the same protocols end to end across node processes.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import coincurve
import nacl.signing

from tholos.bench.bls_micro import bench_bls
from tholos.bench.dise_micro import bench_dise
from tholos.bench.dkg_micro import bench_dkg
from tholos.bench.ecdsa_micro import bench_ecdsa
from tholos.bench.frost_micro import bench_frost
from tholos.bench.frost_micro import format_table as format_frost
from tholos.crypto.frost import FROST_BIP340, FROST_ED25519_SHA512, FROST_SECP256K1_SHA256
from tholos.crypto.groups import ED25519, SECP256K1
from tholos.crypto.groups.bls12381 import BLS12_381_G1

CONFIGS = ((2, 4), (3, 7))


def host() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, single thread"


def _per_op_us(
    fn: Callable[[], object], iterations: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    start = clock()
    for _ in range(iterations):
        fn()
    return (clock() - start) / iterations * 1e6


def baselines(
    iterations: int, clock: Callable[[], float] = time.perf_counter
) -> list[tuple[str, float]]:
    """Single-key sign/verify with the native libraries: what one box does without threshold.
    `clock`: wall time by default; time.process_time gives CPU time on a loaded machine."""
    per_op_us = functools.partial(_per_op_us, clock=clock)
    msg = b"\x42" * 32
    sk = coincurve.PrivateKey()
    ecdsa_sig = sk.sign(msg, hasher=None)
    schnorr_sig = sk.sign_schnorr(msg, b"\x00" * 32)
    xonly = coincurve.PublicKeyXOnly(sk.public_key.format()[1:])
    ed = nacl.signing.SigningKey.generate()
    ed_sig = ed.sign(msg).signature
    ed_vk = ed.verify_key
    return [
        ("libsecp256k1 ECDSA sign", per_op_us(lambda: sk.sign(msg, hasher=None), iterations)),
        (
            "libsecp256k1 ECDSA verify",
            per_op_us(lambda: sk.public_key.verify(ecdsa_sig, msg, hasher=None), iterations),
        ),
        (
            "libsecp256k1 BIP340 sign",
            per_op_us(lambda: sk.sign_schnorr(msg, b"\x00" * 32), iterations),
        ),
        (
            "libsecp256k1 BIP340 verify",
            per_op_us(lambda: xonly.verify(schnorr_sig, msg), iterations),
        ),
        ("libsodium Ed25519 sign", per_op_us(lambda: ed.sign(msg), iterations)),
        ("libsodium Ed25519 verify", per_op_us(lambda: ed_vk.verify(msg, ed_sig), iterations)),
    ]


def print_cases(title: str, result: dict[str, Any], columns: list[str]) -> None:
    """One table from a bench_* result whose `cases` hold mean seconds per operation."""
    print(f"\n{title}")
    head = f"{'t/n':>6}" + "".join(f"{c + ' ms':>22}" for c in columns)
    print(head)
    print("-" * len(head))
    for case in result["cases"]:
        cells = "".join(f"{case[c] * 1000:>22.3f}" for c in columns)
        print(f"{str(case['t']) + '/' + str(case['n']):>6}{cells}")


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    print(f"host: {host()}; {iterations} iterations per row\n")
    print("FROST signing (per signer for commit/sign; coordinator for aggregate)")
    rows = [
        bench_frost(suite, t, n, iterations)
        for suite in (FROST_ED25519_SHA512, FROST_SECP256K1_SHA256, FROST_BIP340)
        for t, n in CONFIGS
    ]
    print(format_frost(rows))
    print("\nDistributed key generation (Pedersen DKG with proofs of knowledge, in memory)")
    print(
        f"{'group':<16}{'t/n':>6}{'whole DKG ms':>14}{'per participant ms':>20}{'DKGs/s/core':>13}"
    )
    for group in (ED25519, SECP256K1, BLS12_381_G1):
        for t, n in CONFIGS:
            r = bench_dkg(group, t, n, max(5, iterations // 10))
            print(
                f"{group.name:<16}{str(t) + '/' + str(n):>6}{r['dkg_ms']:>14.2f}"
                f"{r['per_participant_ms']:>20.2f}{r['dkgs_per_s_one_core']:>13.0f}"
            )
    small = max(5, iterations // 15)
    print_cases(
        "Threshold ECDSA secp256k1 (presignature offline, one online round; 2t-1 signers)",
        bench_ecdsa(small),
        ["presign_total", "presign_per_party", "sign_share", "combine", "sign_online_total"],
    )
    print_cases(
        "Threshold BLS12-381 min-pk (partials checked by pairing only when the result fails)",
        bench_bls(small),
        ["sign_share", "verify_share", "combine", "combine_one_bad", "verify"],
    )
    print_cases(
        "DiSE threshold encryption, 1 KiB (DPRF with Chaum-Pedersen proofs, AES-256-GCM)",
        bench_dise(small),
        ["evaluate", "combine", "encrypt_total", "decrypt_total"],
    )
    print("\nSingle-key baselines (one process, no threshold)")
    for name, us in baselines(iterations * 10):
        print(f"{name:<30}{us:>10.1f} µs{1e6 / us:>12.0f} op/s")


if __name__ == "__main__":
    main()
