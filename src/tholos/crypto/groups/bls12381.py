"""BLS12-381 G1 and G2 over blst (pyblst). Elements are `BlstP1Element` / `BlstP2Element`.

Traps handled here once (PRIMITIVES.md): `BlstP1Element()` is the identity, not the generator, so
the generators are parsed from their standard compressed encodings (draft-irtf-cfrg-pairing-friendly
-curves-11, section 4.2.1; ZCash serialization). `uncompress` checks the curve equation and subgroup
membership but accepts the identity, which `deserialize_element` refuses as RFC 9591 requires.

Scalars are 32-byte big-endian, as in the BLS signature draft (I2OSP(SK, 32)) and Ethereum.
`tholos.crypto.keys.group_by_name` adds both groups on first use, so key packages over G1 deserialize.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from pyblst import BlstP1Element, BlstP2Element

from tholos.crypto.errors import InvalidElement, InvalidScalar
from tholos.crypto.groups.base import Group

R = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
"""The prime order r of G1, G2 and GT."""

_G1_COMPRESSED = bytes.fromhex(
    "97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb"
)
_G2_COMPRESSED = bytes.fromhex(
    "93e02b6052719f607dacd3a088274f65596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e"
    "024aa2b2f08f0a91260805272dc51051c6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8"
)

P = TypeVar("P", BlstP1Element, BlstP2Element)


class _BlstGroup(Group[P]):
    """Shared implementation; subclasses fix the element type, sizes and generator."""

    order = R
    scalar_length = 32
    _cls: type[P]
    _identity: P
    _generator: P
    _identity_encoding: bytes

    def identity(self) -> P:
        return self._identity

    def generator(self) -> P:
        return self._generator

    def is_identity(self, a: P) -> bool:
        return bool(a == self._identity)

    def base_mul(self, k: int) -> P:
        return self._generator.scalar_mul(k % R)

    def mul(self, a: P, k: int) -> P:
        return a.scalar_mul(k % R)

    def add(self, a: P, b: P) -> P:
        return a + b

    def neg(self, a: P) -> P:
        return -a

    def sub(self, a: P, b: P) -> P:
        return a + (-b)

    def sum(self, elements: Iterable[P]) -> P:
        acc = self._identity
        for e in elements:
            acc = acc + e
        return acc

    def multi_mul(self, pairs: Sequence[tuple[P, int]]) -> P:
        return self.sum(a.scalar_mul(k % R) for a, k in pairs)

    def eq(self, a: P, b: P) -> bool:
        return bool(a == b)

    def serialize_element(self, a: P) -> bytes:
        if a == self._identity:
            raise InvalidElement(f"{self.name}: the identity has no encoding")
        return bytes(a.compress())

    def deserialize_element(self, data: bytes) -> P:
        if not isinstance(data, bytes | bytearray) or len(data) != self.element_length:
            raise InvalidElement(f"{self.name}: element must be {self.element_length} bytes")
        data = bytes(data)
        if data == self._identity_encoding:
            raise InvalidElement(f"{self.name}: the identity is not a valid element here")
        try:
            point = self._cls.uncompress(data)
        except ValueError:
            raise InvalidElement(
                f"{self.name}: not a compressed point of the prime-order subgroup"
            ) from None
        # Canonical encoding: re-encoding must give the same bytes (rejects e.g. stray flag bits).
        if point.compress() != data:
            raise InvalidElement(f"{self.name}: non-canonical encoding")
        return point

    def serialize_scalar(self, k: int) -> bytes:
        return self.check_scalar(k).to_bytes(32, "big")

    def deserialize_scalar(self, data: bytes) -> int:
        if not isinstance(data, bytes | bytearray) or len(data) != 32:
            raise InvalidScalar(f"{self.name}: scalar must be 32 bytes")
        k = int.from_bytes(data, "big")
        if k >= R:
            raise InvalidScalar(f"{self.name}: scalar is not below the group order")
        return k


class Bls12381G1Group(_BlstGroup[BlstP1Element]):
    name = "bls12_381_g1"
    element_length = 48
    _cls = BlstP1Element
    _identity = BlstP1Element()
    _generator = BlstP1Element.uncompress(_G1_COMPRESSED)
    _identity_encoding = b"\xc0" + b"\x00" * 47


class Bls12381G2Group(_BlstGroup[BlstP2Element]):
    """G2 as a `Group`, used to combine BLS partial signatures by Lagrange interpolation."""

    name = "bls12_381_g2"
    element_length = 96
    _cls = BlstP2Element
    _identity = BlstP2Element()
    _generator = BlstP2Element.uncompress(_G2_COMPRESSED)
    _identity_encoding = b"\xc0" + b"\x00" * 95


BLS12_381_G1 = Bls12381G1Group()
BLS12_381_G2 = Bls12381G2Group()
