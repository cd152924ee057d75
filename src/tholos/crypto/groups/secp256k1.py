"""secp256k1 over libsecp256k1 (coincurve). Elements are `coincurve.PublicKey`, identity is `None`.

coincurve cannot represent the point at infinity and raises on zero scalars, so both are handled
here, once, and protocol code never sees the difference (PRIMITIVES.md, traps).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from coincurve import PublicKey

from tholos.crypto.errors import InvalidElement, InvalidScalar
from tholos.crypto.groups.base import Group

Point = PublicKey | None

P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_G = PublicKey(bytes.fromhex("0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798"))


class Secp256k1Group(Group[Point]):
    name = "secp256k1"
    order = N
    element_length = 33
    scalar_length = 32

    def identity(self) -> Point:
        return None

    def generator(self) -> Point:
        return _G

    def is_identity(self, a: Point) -> bool:
        return a is None

    def base_mul(self, k: int) -> Point:
        k %= N
        if k == 0:
            return None
        return PublicKey.from_valid_secret(k.to_bytes(32, "big"))

    def mul(self, a: Point, k: int) -> Point:
        k %= N
        if a is None or k == 0:
            return None
        return a.multiply(k.to_bytes(32, "big"))

    def add(self, a: Point, b: Point) -> Point:
        if a is None:
            return b
        if b is None:
            return a
        try:
            return PublicKey.combine_keys([a, b])
        except ValueError:  # the sum is the point at infinity
            return None

    def sum(self, elements: Iterable[Point]) -> Point:
        pts = [e for e in elements if e is not None]
        if not pts:
            return None
        if len(pts) == 1:
            return pts[0]
        try:
            return PublicKey.combine_keys(pts)
        except ValueError:
            # Infinity was reached somewhere; fall back to pairwise addition, which handles it.
            acc: Point = None
            for p in pts:
                acc = self.add(acc, p)
            return acc

    def multi_mul(self, pairs: Sequence[tuple[Point, int]]) -> Point:
        """Σ k·A. Terms on the generator are summed into one fixed-base multiplication (libsecp256k1's
        precomputed table: about 60% of a variable-base one); sigma proofs have several per equation."""
        g_scalar = 0
        points: list[Point] = []
        for a, k in pairs:
            if a is _G:
                g_scalar += k
            else:
                points.append(self.mul(a, k))
        if g_scalar % N:
            points.append(self.base_mul(g_scalar))
        return self.sum(points)

    def neg(self, a: Point) -> Point:
        if a is None:
            return None
        enc = a.format(compressed=True)
        return PublicKey(bytes([enc[0] ^ 1]) + enc[1:])

    def eq(self, a: Point, b: Point) -> bool:
        if a is None or b is None:
            return a is b
        return a.format(compressed=True) == b.format(compressed=True)

    def serialize_element(self, a: Point) -> bytes:
        if a is None:
            raise InvalidElement("secp256k1: the identity has no encoding")
        return a.format(compressed=True)

    def deserialize_element(self, data: bytes) -> Point:
        if not isinstance(data, bytes | bytearray) or len(data) != 33 or data[0] not in (2, 3):
            raise InvalidElement("secp256k1: element must be 33 bytes, compressed SEC1")
        try:
            return PublicKey(bytes(data))
        except ValueError:
            raise InvalidElement("secp256k1: not a point on the curve") from None

    def serialize_scalar(self, k: int) -> bytes:
        return self.check_scalar(k).to_bytes(32, "big")

    def deserialize_scalar(self, data: bytes) -> int:
        if not isinstance(data, bytes | bytearray) or len(data) != 32:
            raise InvalidScalar("secp256k1: scalar must be 32 bytes")
        k = int.from_bytes(data, "big")
        if k >= N:
            raise InvalidScalar("secp256k1: scalar is not below the group order")
        return k

    # -- helpers for x-only (BIP340) and SEC1 uncompressed use -------------------------------------
    def has_even_y(self, a: Point) -> bool:
        if a is None:
            raise InvalidElement("secp256k1: the identity has no y coordinate")
        return a.format(compressed=True)[0] == 2

    def x_only(self, a: Point) -> bytes:
        return self.serialize_element(a)[1:]

    def lift_x(self, x: bytes) -> Point:
        """The point with the given x and even y (BIP340 lift_x)."""
        if len(x) != 32:
            raise InvalidElement("secp256k1: x-only key must be 32 bytes")
        if int.from_bytes(x, "big") >= P:
            raise InvalidElement("secp256k1: x is not below the field size")
        return self.deserialize_element(b"\x02" + bytes(x))


SECP256K1 = Secp256k1Group()
