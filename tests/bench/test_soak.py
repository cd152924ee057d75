"""The soak's verdicts: an answer counts as ok only if an independent verifier accepts it."""

from __future__ import annotations

import os

import nacl.signing
import pytest
from coincurve import PrivateKey

from tholos.bench.soak import Tally, Wrong, _verify
from tholos.crypto.bls import basic


def _flip(sig: bytes) -> str:
    return (sig[:-1] + bytes([sig[-1] ^ 1])).hex()


def test_ed25519_and_bip340_verdicts() -> None:
    msg = os.urandom(32)
    sk = nacl.signing.SigningKey.generate()
    sig = sk.sign(msg).signature
    pub = bytes(sk.verify_key)
    _verify("ed25519", msg, {"signature": sig.hex()}, pub)
    with pytest.raises(Wrong):
        _verify("ed25519", msg, {"signature": _flip(sig)}, pub)
    k = PrivateKey()
    s = k.sign_schnorr(msg)
    xonly = k.public_key_xonly.format()
    _verify("bip340", msg, {"signature": s.hex()}, xonly)
    with pytest.raises(Wrong):
        _verify("bip340", msg, {"signature": _flip(s)}, xonly)


def test_ecdsa_verdict_checks_the_recovered_key() -> None:
    msg = os.urandom(32)
    k = PrivateKey()
    rec = k.sign_recoverable(msg, hasher=None)
    pub = k.public_key.format()
    _verify("ecdsa", msg, {"signature": rec[:64].hex(), "recovery_id": rec[64]}, pub)
    with pytest.raises(Wrong):  # another key's signature
        _verify(
            "ecdsa",
            msg,
            {"signature": rec[:64].hex(), "recovery_id": rec[64]},
            PrivateKey().public_key.format(),
        )


def test_bls_verdict() -> None:
    sk = int.from_bytes(os.urandom(31), "big") + 1
    msg = os.urandom(32)
    sig = basic.sign(sk, msg)
    pub = basic.sk_to_pk(sk)
    _verify("bls12381", msg, {"signature": sig.hex()}, pub)
    with pytest.raises(Wrong):
        _verify("bls12381", os.urandom(32), {"signature": sig.hex()}, pub)


def test_tally_counts_outcomes_codes_and_ok_latency_only() -> None:
    t = Tally()
    t.sent = 3
    t.add("sign/bip340", "ok", 0.010)
    t.add("sign/bip340", "failed", 5.0, "nodes_unavailable")
    t.add("sign/ecdsa", "lost", 30.0)
    s = t.summary()
    assert (s["ok"], s["failed"], s["lost"], s["wrong"]) == (1, 1, 1, 0)
    assert s["error_codes"] == {"nodes_unavailable": 1}
    assert s["p99_ms"] == 10.0  # failed and lost requests are not latency samples
    assert s["by_operation"]["sign/ecdsa:lost"] == 1
