"""Independent verification of signatures (libraries other than tholos where one exists)."""

from __future__ import annotations

import nacl.signing
from coincurve import PublicKeyXOnly

from tholos.crypto.frost.suites import FROST_SECP256K1_SHA256


def verify(scheme: str, message: bytes, signature: bytes, public_key: bytes) -> bool:
    if scheme == "bip340":
        assert len(signature) == 64 and len(public_key) == 32
        if len(message) != 32:
            raise ValueError("coincurve verifies 32-byte BIP340 messages")
        return bool(PublicKeyXOnly(public_key).verify(signature, message))
    if scheme == "ed25519":
        assert len(signature) == 64 and len(public_key) == 32
        try:
            nacl.signing.VerifyKey(public_key).verify(message, signature)
            return True
        except Exception:
            return False
    if scheme == "secp256k1":
        # No independent RFC 9591 secp256k1 verifier exists on PyPI; the suite's own check.
        assert len(signature) == 65 and len(public_key) == 33
        try:
            FROST_SECP256K1_SHA256.verify(message, signature, public_key)
            return True
        except Exception:
            return False
    raise ValueError(scheme)


def r_of(signature: bytes) -> bytes:
    """The nonce commitment part of a signature (R or x(R))."""
    return signature[:33] if len(signature) == 65 else signature[:32]
