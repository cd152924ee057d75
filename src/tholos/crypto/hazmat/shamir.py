"""Shamir secret sharing over Z_q with Feldman VSS commitments, and Lagrange interpolation.

References: Shamir 1979; Feldman 1987; RFC 9591 appendix C (secret_share_shard, vss_verify,
derive_interpolating_value).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from tholos.crypto.errors import InvalidParticipants, InvalidShare
from tholos.crypto.groups.base import Group

E = TypeVar("E")


def check_identifiers(identifiers: Sequence[int], order: int, *, minimum: int = 1) -> None:
    """Identifiers must be distinct, non-zero and below the group order; at least `minimum` of them."""
    if len(identifiers) < minimum:
        raise InvalidParticipants(f"need at least {minimum} participants, got {len(identifiers)}")
    seen: set[int] = set()
    for i in identifiers:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 < i < order:
            raise InvalidParticipants(f"identifier {i!r} is not in 1..order-1")
        if i in seen:
            raise InvalidParticipants(f"identifier {i} appears twice")
        seen.add(i)


def check_threshold(t: int, n: int) -> None:
    if not isinstance(t, int) or isinstance(t, bool) or not isinstance(n, int) or not 1 <= t <= n:
        raise InvalidParticipants(f"threshold must satisfy 1 <= t <= n (t={t}, n={n})")


def random_polynomial(group: Group[E], constant: int, degree: int) -> list[int]:
    """Coefficients [a0 = constant, a1..a_degree] with the others uniform. Secret: handle with care."""
    return [constant % group.order] + [group.random_scalar() for _ in range(degree)]


def evaluate(coefficients: Sequence[int], x: int, order: int) -> int:
    """f(x) mod order by Horner's rule."""
    acc = 0
    for c in reversed(coefficients):
        acc = (acc * x + c) % order
    return acc


def split(group: Group[E], secret: int, t: int, identifiers: Sequence[int]) -> dict[int, int]:
    """Shamir-share `secret` with threshold t among `identifiers`: {id: f(id)}."""
    check_threshold(t, len(identifiers))
    check_identifiers(identifiers, group.order)
    coeffs = random_polynomial(group, secret, t - 1)
    return {i: evaluate(coeffs, i, group.order) for i in identifiers}


def commit(group: Group[E], coefficients: Sequence[int]) -> list[E]:
    """Feldman commitment [a_j·G]."""
    return [group.base_mul(a) for a in coefficients]


def evaluate_commitment(group: Group[E], commitment: Sequence[E], x: int) -> E:
    """Σ C_j·x^j: the public image f(x)·G of the committed polynomial at x."""
    q = group.order
    pairs: list[tuple[E, int]] = []
    power = 1
    for c in commitment:
        pairs.append((c, power))
        power = power * x % q
    return group.multi_mul(pairs)


def verify_share(
    group: Group[E], commitment: Sequence[E], identifier: int, share: int, dealer: int
) -> None:
    """Feldman check share·G == Σ C_j·id^j; raises InvalidShare naming the dealer."""
    if not 0 <= share < group.order or not group.eq(
        group.base_mul(share), evaluate_commitment(group, commitment, identifier)
    ):
        raise InvalidShare(
            f"share for participant {identifier} does not match dealer {dealer}'s commitment",
            culprits=[dealer],
        )


def lagrange_coefficient(identifiers: Sequence[int], i: int, order: int, x: int = 0) -> int:
    """λ_i(x) for the set `identifiers` (RFC 9591 derive_interpolating_value, generalised to any x)."""
    if i not in identifiers:
        raise InvalidParticipants(f"identifier {i} is not in the signer set")
    num = 1
    den = 1
    for j in identifiers:
        if j == i:
            continue
        num = num * (x - j) % order
        den = den * (i - j) % order
    if den == 0:
        raise InvalidParticipants("duplicate identifiers in the interpolation set")
    return num * pow(den, -1, order) % order


def lagrange_coefficients(identifiers: Sequence[int], order: int, x: int = 0) -> dict[int, int]:
    """All λ_i(x) for the set at once (one inversion per coefficient)."""
    check_identifiers(identifiers, order)
    return {i: lagrange_coefficient(identifiers, i, order, x) for i in identifiers}


def interpolate(points: dict[int, int], order: int, x: int = 0) -> int:
    """f(x) from {id: f(id)} with len(points) >= degree + 1."""
    lam = lagrange_coefficients(list(points), order, x)
    return sum(lam[i] * y for i, y in points.items()) % order


def interpolate_elements(group: Group[E], points: dict[int, E], x: int = 0) -> E:
    """F(x)·G from {id: f(id)·G} (interpolation in the exponent)."""
    lam = lagrange_coefficients(list(points), group.order, x)
    return group.multi_mul([(p, lam[i]) for i, p in points.items()])
