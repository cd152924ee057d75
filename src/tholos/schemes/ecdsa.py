"""Threshold ECDSA over secp256k1 (presignatures, one online round; node/ecdsa.py, gateway/ecdsa.py).

Public key: compressed, 33 bytes; output r || s (64, low-S) and a recovery id. BIP32 tweaks are
those of the FROST secp256k1 suite (same group key and additive tweak; only the signature differs).
"""

from __future__ import annotations

from tholos.crypto.ecdsa.presign import min_participants
from tholos.crypto.frost.suites import FROST_SECP256K1_SHA256
from tholos.schemes.base import Scheme

ECDSA_PRESIG_POOL = "ecdsa-presig"


class EcdsaScheme(Scheme):
    """Threshold ECDSA: 2t-1 signers per signature, presignatures pooled per key package."""

    kind = "ecdsa"

    def __init__(self) -> None:
        super().__init__("ecdsa", FROST_SECP256K1_SHA256, 33)
        self.pool = ECDSA_PRESIG_POOL
        self.signature_length = 64

    def signers_needed(self, threshold: int) -> int:
        return min_participants(threshold)
