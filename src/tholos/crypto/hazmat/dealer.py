"""Trusted-dealer sharing of a known secret key into KeyShares (key import, tests, benchmarks).

Hazmat: the whole key exists in the dealer's memory. tholos generates keys with the DKG; this is
for importing an existing key once (then wipe it) and for tests that must know the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from tholos.crypto.groups.base import Group
from tholos.crypto.hazmat.shamir import split
from tholos.crypto.keys import KeyShare, PublicKeyPackage
from tholos.crypto.secret import SecretScalar

E = TypeVar("E")


def deal_key_shares(
    group: Group[E], secret: int | None, threshold: int, identifiers: Sequence[int]
) -> list[KeyShare[E]]:
    """Shamir-share `secret` (random if None) with threshold t; one KeyShare per identifier."""
    if secret is None:
        secret = group.random_scalar()
    group.check_scalar(secret)
    shares = split(group, secret, threshold, list(identifiers))
    public = PublicKeyPackage(
        group=group,
        threshold=threshold,
        group_public_key=group.base_mul(secret),
        verifying_shares={i: group.base_mul(s) for i, s in shares.items()},
    )
    return [
        KeyShare(identifier=i, secret_share=SecretScalar(s), public=public)
        for i, s in shares.items()
    ]
