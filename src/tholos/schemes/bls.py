"""Threshold BLS12-381 min-pk (keys in G1, 48 bytes; 96-byte signatures in G2), Ethereum POP suite.

One deterministic round of t partial signatures (node/bls.py, gateway/bls.py).
"""

from __future__ import annotations

from typing import Any

from tholos.crypto.bls import threshold as _bls
from tholos.crypto.frost.suites import FROST_ED25519_SHA512
from tholos.crypto.groups.bls12381 import BLS12_381_G1
from tholos.crypto.keys import PublicKeyPackage
from tholos.schemes.base import UnderivableScheme


class BlsScheme(UnderivableScheme):
    """Threshold BLS: keys in G1 (no derivation), signatures verified by pyblst."""

    kind = "bls"

    def __init__(self) -> None:
        # The FROST suite is only a placeholder for inherited attributes; group is G1.
        super().__init__("bls12381", FROST_ED25519_SHA512, 48)
        self.group = BLS12_381_G1
        self.pool = "bls-none"
        self.signature_length = 96

    def group_key_bytes(self, public: PublicKeyPackage[Any]) -> bytes:
        return _bls.public_key_bytes(public)

    def verify(self, message: bytes, signature: bytes, public_key: bytes) -> None:
        from tholos.crypto.bls import basic

        basic.verify(public_key, message, signature)
