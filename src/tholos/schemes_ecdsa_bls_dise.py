"""Adapters of the non-FROST schemes (threshold ECDSA, threshold BLS, DiSE) for node and gateway.

Registered into `tholos.schemes.SCHEMES` when `tholos.schemes` is imported, so key generation
(the generic DKG over the scheme's group), refresh, import and derivation work unchanged:

| scheme   | group          | public key              | output                                   |
|----------|----------------|-------------------------|------------------------------------------|
| ecdsa    | secp256k1      | compressed, 33 bytes    | r || s (64, low-S) + recovery id          |
| bls12381 | BLS12-381 G1   | compressed, 48 bytes    | 96-byte G2 signature (Ethereum POP suite) |
| dise     | edwards25519   | 32 bytes (group key)    | DPRF partial evaluations (client AEAD)    |

Signing for these does not use the FROST nonce pools: ECDSA has its own presignature pools (per
key package), BLS is one deterministic round, DiSE nodes evaluate a DPRF (see node/ecdsa_bls_dise.py and
gateway/ecdsa_bls_dise.py).
"""

from __future__ import annotations

from typing import Any

from tholos.crypto import dise as _dise
from tholos.crypto.bls import threshold as _bls
from tholos.crypto.ecdsa.presign import min_participants
from tholos.crypto.errors import InvalidInput
from tholos.crypto.frost.suites import FROST_ED25519_SHA512, FROST_SECP256K1_SHA256
from tholos.crypto.groups.bls12381 import BLS12_381_G1
from tholos.crypto.keys import PublicKeyPackage
from tholos.schemes import SCHEMES, Scheme, SigningRequest

ECDSA_PRESIG_POOL = "ecdsa-presig"


class ExtraScheme(Scheme):
    """Common part: no FROST nonces, no FROST signing through `SigningCoordinator`."""

    kind = ""

    def new_nonces(self, count: int) -> list[tuple[bytes, bytes, bytes]]:
        raise InvalidInput(f"{self.name} keys do not use FROST nonces")

    def check_request(self, public: PublicKeyPackage[Any], req: SigningRequest) -> None:
        raise InvalidInput(f"{self.name} keys are not signed through the FROST path")

    def signers_needed(self, threshold: int) -> int:
        return threshold


class EcdsaScheme(ExtraScheme):
    """Threshold ECDSA over secp256k1; BIP32 tweaks as for the FROST secp256k1 suite (the group
    key and the additive tweak are the same; only the signature differs)."""

    kind = "ecdsa"

    def __init__(self) -> None:
        super().__init__("ecdsa", FROST_SECP256K1_SHA256, 33)
        self.pool = ECDSA_PRESIG_POOL
        self.signature_length = 64

    def signers_needed(self, threshold: int) -> int:
        return min_participants(threshold)


class UnderivableScheme(ExtraScheme):
    """A scheme whose keys have no BIP32 or Taproot derivation (BLS, DiSE)."""

    @property
    def supports_derivation(self) -> bool:
        return False

    def public_key(
        self, public: PublicKeyPackage[Any], tweak: int = 0, merkle_root: bytes | None = None
    ) -> bytes:
        if tweak or merkle_root is not None:
            raise InvalidInput(f"{self.name} keys have no derivation")
        return self.group_key_bytes(public)

    def group_key_bytes(self, public: PublicKeyPackage[Any]) -> bytes:
        """The encoded group public key."""
        return bytes(public.group.serialize_element(public.group_public_key))


class BlsScheme(UnderivableScheme):
    """Threshold BLS12-381 min-pk (keys in G1, signatures in G2), Ethereum POP ciphersuite."""

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


class DiseScheme(UnderivableScheme):
    """DiSE threshold symmetric encryption: the key is a Shamir-shared DPRF key over edwards25519."""

    kind = "dise"

    def __init__(self) -> None:
        super().__init__("dise", FROST_ED25519_SHA512, 32)
        self.pool = "dise-none"
        self.signature_length = 0

    @staticmethod
    def key_id(public: PublicKeyPackage[Any]) -> bytes:
        return _dise.key_id(public)


EXTRA_SCHEMES: dict[str, ExtraScheme] = {
    s.name: s for s in (EcdsaScheme(), BlsScheme(), DiseScheme())
}
SCHEMES.update(EXTRA_SCHEMES)
