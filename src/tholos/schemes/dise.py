"""DiSE threshold symmetric encryption: a Shamir-shared DPRF key over edwards25519 (32-byte group
key). Nodes return DPRF partial evaluations; the client combines them and runs the AEAD
(node/dise.py, gateway/dise.py).
"""

from __future__ import annotations

from typing import Any

from tholos.crypto import dise as _dise
from tholos.crypto.frost.suites import FROST_ED25519_SHA512
from tholos.crypto.keys import PublicKeyPackage
from tholos.schemes.base import UnderivableScheme


class DiseScheme(UnderivableScheme):
    """DiSE: evaluations, not signatures (`signature_length` 0)."""

    kind = "dise"

    def __init__(self) -> None:
        super().__init__("dise", FROST_ED25519_SHA512, 32)
        self.pool = "dise-none"
        self.signature_length = 0

    @staticmethod
    def key_id(public: PublicKeyPackage[Any]) -> bytes:
        return _dise.key_id(public)
