"""FROST for BIP340 Schnorr signatures and BIP341 Taproot ("FROST-BIP340-v1", secp256k1).

Differences from FROST(secp256k1, SHA-256) (RFC 9591 section 6.5), following BIP340 and the approach
of ZcashFoundation/frost `frost-secp256k1-tr`:

- Public keys are x-only (32 bytes). The group key is normalised to even Y: if Y has odd y, every
  share is negated (s_i -> -s_i), which negates the group key. Signing applies this implicitly.
- The challenge is H2 = BIP340 tagged hash "BIP0340/challenge"(x(R) || x(P) || m) mod n.
- If the group commitment R has odd y, every signer negates both its nonces (d, e) -> (-d, -e), and
  share verification negates the commitment share; the signature is x(R) || z (64 bytes).
- Optional BIP341 taproot tweak: with `merkle_root` (b"" for a key-path-only output, BIP86 style, or
  the 32-byte script tree root), the even-Y internal key P gets Q = P + t·G with
  t = TapTweak(x(P) || merkle_root); t is added to every share, and Q is normalised to even Y again.
- An additive `tweak` (BIP32 non-hardened derivation) is applied to the full (not x-only) group key
  first, before any normalisation, exactly as for the other suites.

H1, H3, H4, H5 are those of RFC 9591 section 6.5 with contextString "FROST-BIP340-v1" (deliberate: this
suite's binding factors and nonces are domain-separated from the plain secp256k1 suite). The binding
factor input hashes the compressed encoding (0x02 || x) of the final even-Y signing key.
"""

from __future__ import annotations

import hashlib

from coincurve import PublicKeyXOnly

from tholos.crypto.errors import InvalidElement, InvalidInput, InvalidScalar, InvalidSignature
from tholos.crypto.frost.ciphersuite import (
    Ciphersuite,
    EffectiveKey,
    hash_to_field_sha256,
    register_suite,
    tagged_hash,
)
from tholos.crypto.groups import SECP256K1
from tholos.crypto.groups.secp256k1 import Point

_N = SECP256K1.order


def taproot_tweak(internal_key_x: bytes, merkle_root: bytes = b"") -> int:
    """BIP341 taproot_tweak_pubkey's scalar: int(TapTweak(x(P) || h)); h is b"" (no script tree) or
    the 32-byte merkle root. Raises InvalidScalar in the negligible case t >= n (BIP341 fails too)."""
    if not isinstance(internal_key_x, bytes) or len(internal_key_x) != 32:
        raise InvalidInput("taproot internal key must be 32 bytes (x-only)")
    if not isinstance(merkle_root, bytes) or len(merkle_root) not in (0, 32):
        raise InvalidInput("taproot merkle root must be b'' or 32 bytes")
    t = int.from_bytes(tagged_hash("TapTweak", internal_key_x + merkle_root), "big")
    if t >= _N:
        raise InvalidScalar("taproot tweak is not below the group order")
    return t


class Bip340(Ciphersuite[Point]):
    """FROST producing BIP340 signatures (x(R) || z) under an x-only, optionally taproot-tweaked key."""

    name = "FROST-BIP340-v1"
    context_string = b"FROST-BIP340-v1"
    group = SECP256K1
    code = 3
    signature_length = 64
    public_key_length = 32
    _needs_key_normalisation = True

    def __init__(self) -> None:
        super().__init__()
        c = self.context_string
        self._dst_rho, self._dst_nonce = c + b"rho", c + b"nonce"

    def H1(self, m: bytes) -> int:
        return hash_to_field_sha256(m, self._dst_rho, _N)

    def H2(self, m: bytes) -> int:
        # BIP340: e = int(hash_BIP0340/challenge(bytes(R) || bytes(P) || m)) mod n.
        return int.from_bytes(tagged_hash("BIP0340/challenge", m), "big") % _N

    def H3(self, m: bytes) -> int:
        return hash_to_field_sha256(m, self._dst_nonce, _N)

    def H4(self, m: bytes) -> bytes:
        return hashlib.sha256(self.context_string + b"msg" + m).digest()

    def H5(self, m: bytes) -> bytes:
        return hashlib.sha256(self.context_string + b"com" + m).digest()

    def challenge(self, group_commitment: Point, key: EffectiveKey[Point], message: bytes) -> int:
        # Only x-coordinates are hashed; R and P are both even-Y at this point.
        return self.H2(SECP256K1.x_only(group_commitment) + key.public_key_bytes + message)

    def commitment_is_negated(self, group_commitment: Point) -> bool:
        return not SECP256K1.has_even_y(group_commitment)

    def _derive_key(
        self, group_public_key: Point, tweak: int, merkle_root: bytes | None
    ) -> EffectiveKey[Point]:
        g = SECP256K1
        negate, offset, y = False, 0, group_public_key
        if tweak:  # BIP32-style additive tweak on the full key
            y, offset = g.add(y, g.base_mul(tweak)), tweak
        if merkle_root is not None:  # BIP341: P = lift_x(x(Y)), Q = P + t·G
            if g.is_identity(y):
                raise InvalidInput("tweaked group key is the identity")
            if not g.has_even_y(y):
                y, negate, offset = g.neg(y), not negate, -offset % _N
            t = taproot_tweak(g.x_only(y), merkle_root)
            y, offset = g.add(y, g.base_mul(t)), (offset + t) % _N
        if g.is_identity(y):
            raise InvalidInput("tweaked group key is the identity")
        if not g.has_even_y(y):  # BIP340 even-Y normalisation of the signing key
            y, negate, offset = g.neg(y), not negate, -offset % _N
        enc = g.serialize_element(y)
        return EffectiveKey(y, negate, offset, enc, enc[1:])

    # -- encodings: x-only keys, x(R) || z signatures ----------------------------------------------
    def serialize_public_key(self, y: Point) -> bytes:
        return SECP256K1.x_only(y)

    def deserialize_public_key(self, data: bytes) -> Point:
        if not isinstance(data, bytes | bytearray):
            raise InvalidElement("x-only public key must be bytes")
        return SECP256K1.lift_x(bytes(data))

    def serialize_signature(self, group_commitment: Point, z: int) -> bytes:
        return SECP256K1.x_only(group_commitment) + SECP256K1.serialize_scalar(z)

    def deserialize_signature(self, signature: bytes) -> tuple[Point, int]:
        if not isinstance(signature, bytes | bytearray) or len(signature) != 64:
            raise InvalidSignature(f"{self.name}: signature must be 64 bytes")
        try:
            return SECP256K1.lift_x(bytes(signature[:32])), SECP256K1.deserialize_scalar(
                bytes(signature[32:])
            )
        except InvalidInput:
            raise InvalidSignature(f"{self.name}: malformed signature") from None

    def verify(self, message: bytes, signature: bytes, public_key: bytes) -> None:
        """BIP340 verification by libsecp256k1 (any message length)."""
        if not isinstance(public_key, bytes) or len(public_key) != 32:
            raise InvalidElement("x-only public key must be 32 bytes")
        try:
            xonly = PublicKeyXOnly(public_key)
        except ValueError:
            raise InvalidElement("x-only public key is not on the curve") from None
        if not isinstance(signature, bytes | bytearray) or len(signature) != 64:
            raise InvalidSignature(f"{self.name}: signature must be 64 bytes")
        if not xonly.verify(bytes(signature), bytes(message)):
            raise InvalidSignature(f"{self.name}: signature does not verify")

    def verify_elements(
        self, message: bytes, r: Point, z: int, y: Point, signature: bytes, public_key: bytes
    ) -> None:
        if not PublicKeyXOnly(public_key).verify(signature, message):
            raise InvalidSignature(f"{self.name}: signature does not verify")


FROST_BIP340 = Bip340()
register_suite(FROST_BIP340)
