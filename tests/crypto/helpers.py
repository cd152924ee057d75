"""Shared test helpers for tholos.crypto: trusted-dealer key material and independent verifiers.

Trusted dealer: a stand-in for the DKG in protocol tests (and the way a known key is imported).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from coincurve import PublicKey, PublicKeyXOnly
from nacl.signing import VerifyKey

from tholos.crypto.groups.base import Group
from tholos.crypto.hazmat.dealer import deal_key_shares
from tholos.crypto.keys import KeyShare, PublicKeyPackage

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def trusted_dealer_keygen(
    group: Group[Any],
    t: int,
    identifiers: Sequence[int] | int,
    secret: int | None = None,
) -> tuple[dict[int, KeyShare[Any]], PublicKeyPackage[Any]]:
    """Shamir-share `secret` (random if None) with threshold t: ({id: KeyShare}, PublicKeyPackage)."""
    ids = range(1, identifiers + 1) if isinstance(identifiers, int) else identifiers
    shares = deal_key_shares(group, secret, t, ids)
    return {ks.identifier: ks for ks in shares}, shares[0].public


# -- independent verifiers (no tholos code on the verification path) --------------------------------
def _xmd_sha256(msg: bytes, dst: bytes, n: int) -> bytes:
    """RFC 9380 expand_message_xmd(SHA-256), written out plainly, independently of tholos."""
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha256(b"\x00" * 64 + msg + n.to_bytes(2, "big") + b"\x00" + dst_prime).digest()
    bs = [hashlib.sha256(b0 + b"\x01" + dst_prime).digest()]
    for i in range(2, -(-n // 32) + 1):
        prev = bytes(x ^ y for x, y in zip(b0, bs[-1], strict=True))
        bs.append(hashlib.sha256(prev + bytes([i]) + dst_prime).digest())
    return b"".join(bs)[:n]


def verify_ed25519(message: bytes, signature: bytes, public_key: bytes) -> None:
    """libsodium RFC 8032 verification; raises nacl.exceptions.BadSignatureError."""
    VerifyKey(public_key).verify(message, signature)


def verify_frost_secp256k1(message: bytes, signature: bytes, public_key: bytes) -> None:
    """FROST(secp256k1, SHA-256) verification recomputed with coincurve: z·G == R + c·Y."""
    assert len(signature) == 65
    r = PublicKey(signature[:33])
    z = int.from_bytes(signature[33:], "big")
    assert 0 < z < SECP256K1_N
    dst = b"FROST-secp256k1-SHA256-v1chal"
    c = int.from_bytes(_xmd_sha256(signature[:33] + public_key + message, dst, 48), "big")
    c %= SECP256K1_N
    y = PublicKey(public_key)
    right = PublicKey.combine_keys([r, y.multiply(c.to_bytes(32, "big"))])
    assert PublicKey.from_secret(z.to_bytes(32, "big")).format() == right.format()


def verify_bip340(message: bytes, signature: bytes, public_key: bytes) -> None:
    """libsecp256k1's BIP340 verifier."""
    assert PublicKeyXOnly(public_key).verify(signature, message)


INDEPENDENT_VERIFIERS = {
    "FROST-ED25519-SHA512-v1": verify_ed25519,
    "FROST-secp256k1-SHA256-v1": verify_frost_secp256k1,
    "FROST-BIP340-v1": verify_bip340,
}
