"""Trusted-dealer sharing of a known secret key into KeyShares (key import, tests, benchmarks).

Hazmat: the whole key exists in the dealer's memory. tholos generates keys with the DKG; this is
for importing an existing key once (then wipe it) and for tests that must know the key.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from tholos.crypto.errors import InvalidInput
from tholos.crypto.groups.base import Group
from tholos.crypto.hazmat.shamir import check_identifiers, check_threshold, evaluate
from tholos.crypto.hazmat.shamir import random_polynomial as _random_polynomial
from tholos.crypto.keys import KeyShare, PublicKeyPackage
from tholos.crypto.secret import SecretScalar

E = TypeVar("E")


def deal_key_shares(
    group: Group[E], secret: int | None, threshold: int, identifiers: Iterable[int]
) -> list[KeyShare[E]]:
    """Shamir-share `secret` (random if None) with threshold t; one KeyShare per identifier, all
    sharing one `PublicKeyPackage`. The polynomial is overwritten before returning (best effort,
    see tholos.crypto.secret). Raises InvalidInput for a zero or out-of-range secret, bad
    identifiers or threshold, and (probability ~n/order) when a share comes out zero."""
    ids = list(identifiers)
    check_threshold(threshold, len(ids))
    check_identifiers(ids, group.order)
    if secret is None:
        secret = group.random_scalar()
    if group.check_scalar(secret) == 0:
        raise InvalidInput("the secret key may not be zero")
    coeffs = _random_polynomial(group, secret, threshold - 1)
    values: dict[int, int] = {}
    try:
        values = {i: evaluate(coeffs, i, group.order) for i in ids}
        if 0 in values.values():
            raise InvalidInput("a share came out zero; deal again")
        public = PublicKeyPackage(
            group=group,
            threshold=threshold,
            group_public_key=group.base_mul(coeffs[0]),
            verifying_shares={i: group.base_mul(v) for i, v in values.items()},
        )
        return [KeyShare(i, SecretScalar(v), public) for i, v in values.items()]
    finally:
        coeffs[:] = [0] * len(coeffs)
        values.clear()
