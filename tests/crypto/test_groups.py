"""The group layer: algebraic laws, identity handling, and strict decoding of untrusted bytes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tholos.crypto.errors import InvalidElement, InvalidScalar
from tholos.crypto.groups import ED25519, SECP256K1, Group

GROUPS: list[Group[Any]] = [SECP256K1, ED25519]
scalars = st.integers(min_value=0, max_value=2**256)


@pytest.mark.parametrize("g", GROUPS, ids=lambda g: g.name)
@settings(max_examples=30, deadline=None)
@given(a=scalars, b=scalars)
def test_homomorphism(g: Group[Any], a: int, b: int) -> None:
    A, B = g.base_mul(a), g.base_mul(b)
    assert g.eq(g.add(A, B), g.base_mul(a + b))
    assert g.eq(g.sub(A, B), g.base_mul(a - b))
    assert g.eq(g.mul(A, b), g.base_mul(a * b))
    assert g.eq(g.neg(A), g.base_mul(-a))
    assert g.eq(g.sum([A, B, g.neg(A)]), B)
    assert g.eq(g.multi_mul([(A, 3), (B, 5)]), g.base_mul(3 * a + 5 * b))


@pytest.mark.parametrize("g", GROUPS, ids=lambda g: g.name)
def test_identity_is_representable(g: Group[Any]) -> None:
    ident = g.identity()
    A = g.base_mul(7)
    assert g.is_identity(g.base_mul(0)) and g.is_identity(g.base_mul(g.order))
    assert g.is_identity(g.add(A, g.neg(A)))
    assert g.is_identity(g.mul(ident, 5)) and g.is_identity(g.mul(A, 0))
    assert g.eq(g.add(ident, A), A) and g.eq(g.add(A, ident), A)
    assert g.is_identity(g.sum([]))
    with pytest.raises(InvalidElement):
        g.serialize_element(ident)


@pytest.mark.parametrize("g", GROUPS, ids=lambda g: g.name)
def test_roundtrip_and_generator(g: Group[Any]) -> None:
    A = g.base_mul(123456789)
    assert g.eq(g.deserialize_element(g.serialize_element(A)), A)
    assert g.eq(g.base_mul(1), g.generator())
    k = g.order - 1
    assert g.deserialize_scalar(g.serialize_scalar(k)) == k


@pytest.mark.parametrize("g", GROUPS, ids=lambda g: g.name)
def test_bad_scalars(g: Group[Any]) -> None:
    with pytest.raises(InvalidScalar):
        g.deserialize_scalar(b"\x00" * 31)
    with pytest.raises(InvalidScalar):
        g.serialize_scalar(g.order)
    with pytest.raises(InvalidScalar):
        g.serialize_scalar(-1)
    too_big = g.order.to_bytes(32, "big" if g is SECP256K1 else "little")
    with pytest.raises(InvalidScalar):
        g.deserialize_scalar(too_big)


def test_secp256k1_rejects_bad_points() -> None:
    g = SECP256K1
    good = g.serialize_element(g.base_mul(5))
    for bad in (good[:-1], b"\x04" + good[1:], b"\x05" + good[1:], b"", good + b"\x00"):
        with pytest.raises(InvalidElement):
            g.deserialize_element(bad)
    # x = 5 is not on the curve (5^3 + 7 = 132 is a non-residue mod p), x >= p is non-canonical
    with pytest.raises(InvalidElement):
        g.deserialize_element(b"\x02" + (5).to_bytes(32, "big"))
    with pytest.raises(InvalidElement):
        g.deserialize_element(b"\x02" + b"\xff" * 32)


def test_ed25519_rejects_bad_points() -> None:
    g = ED25519
    identity = b"\x01" + b"\x00" * 31
    # a point of order 8 (small-order, outside the prime-order subgroup)
    small_order = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
    non_canonical = b"\xff" * 31 + b"\x7f"  # y >= p
    for bad in (identity, small_order, non_canonical, b"\x00" * 31, b""):
        with pytest.raises(InvalidElement):
            g.deserialize_element(bad)
    # a point on the curve but with a torsion component: P + small-order point
    P = g.base_mul(9)
    import nacl.bindings as sodium

    mixed = sodium.crypto_core_ed25519_add(P, small_order)
    with pytest.raises(InvalidElement):
        g.deserialize_element(mixed)


def test_x_only_helpers() -> None:
    g = SECP256K1
    P = g.base_mul(11)
    x = g.x_only(P)
    even = g.lift_x(x)
    assert g.has_even_y(even)
    assert g.eq(even, P) or g.eq(even, g.neg(P))
    with pytest.raises(InvalidElement):
        g.lift_x(b"\xff" * 32)
