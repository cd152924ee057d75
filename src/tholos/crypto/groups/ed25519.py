"""Edwards25519 prime-order subgroup over libsodium (PyNaCl bindings). Elements are 32-byte encodings.

libsodium's no-clamp multiplications refuse scalar 0, the identity and an identity result; those
cases are handled here. Deserialization enforces canonical encoding and membership of the prime-order
subgroup, and rejects the identity, as RFC 9591 section 6.1 requires.
"""

from __future__ import annotations

from collections.abc import Iterable

from nacl import bindings as sodium
from nacl.exceptions import RuntimeError as SodiumRuntimeError

from tholos.crypto.errors import InvalidElement, InvalidScalar
from tholos.crypto.groups.base import Group

L = 2**252 + 27742317777372353535851937790883648493
_IDENTITY = b"\x01" + b"\x00" * 31
_G = bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666")


class Ed25519Group(Group[bytes]):
    name = "edwards25519"
    order = L
    element_length = 32
    scalar_length = 32

    def identity(self) -> bytes:
        return _IDENTITY

    def generator(self) -> bytes:
        return _G

    def is_identity(self, a: bytes) -> bool:
        return a == _IDENTITY

    def base_mul(self, k: int) -> bytes:
        k %= L
        if k == 0:
            return _IDENTITY
        return sodium.crypto_scalarmult_ed25519_base_noclamp(k.to_bytes(32, "little"))

    def mul(self, a: bytes, k: int) -> bytes:
        k %= L
        if k == 0 or a == _IDENTITY:
            return _IDENTITY
        if a == _G:  # fixed-base table: the same point, about 5x faster (proofs use G often)
            return sodium.crypto_scalarmult_ed25519_base_noclamp(k.to_bytes(32, "little"))
        return sodium.crypto_scalarmult_ed25519_noclamp(k.to_bytes(32, "little"), a)

    def add(self, a: bytes, b: bytes) -> bytes:
        if a == _IDENTITY:
            return b
        if b == _IDENTITY:
            return a
        return sodium.crypto_core_ed25519_add(a, b)

    def sum(self, elements: Iterable[bytes]) -> bytes:
        acc = _IDENTITY
        for e in elements:
            acc = self.add(acc, e)
        return acc

    def neg(self, a: bytes) -> bytes:
        if a == _IDENTITY:
            return a
        return sodium.crypto_core_ed25519_sub(_IDENTITY, a)

    def sub(self, a: bytes, b: bytes) -> bytes:
        if b == _IDENTITY:
            return a
        return sodium.crypto_core_ed25519_sub(a, b)

    def eq(self, a: bytes, b: bytes) -> bool:
        return a == b

    def serialize_element(self, a: bytes) -> bytes:
        if a == _IDENTITY:
            raise InvalidElement("edwards25519: the identity has no encoding")
        return a

    def deserialize_element(self, data: bytes) -> bytes:
        if not isinstance(data, bytes | bytearray) or len(data) != 32:
            raise InvalidElement("edwards25519: element must be 32 bytes")
        data = bytes(data)
        try:
            valid = sodium.crypto_core_ed25519_is_valid_point(data)
        except SodiumRuntimeError:
            valid = False
        if not valid:
            raise InvalidElement(
                "edwards25519: not a canonical point of the prime-order subgroup (or the identity)"
            )
        return data

    def serialize_scalar(self, k: int) -> bytes:
        return self.check_scalar(k).to_bytes(32, "little")

    def deserialize_scalar(self, data: bytes) -> int:
        if not isinstance(data, bytes | bytearray) or len(data) != 32:
            raise InvalidScalar("edwards25519: scalar must be 32 bytes")
        k = int.from_bytes(data, "little")
        if k >= L:
            raise InvalidScalar("edwards25519: scalar is not below the group order")
        return k


ED25519 = Ed25519Group()
