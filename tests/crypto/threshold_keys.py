"""Trusted-dealer key shares for the ECDSA, BLS and DiSE tests (a stand-in for the DKG, and the way
a known private key is imported), plus a helper that runs the real DKG when it exists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tholos.crypto import dkg
from tholos.crypto.groups.base import Group
from tholos.crypto.hazmat.dealer import deal_key_shares
from tholos.crypto.hazmat.shamir import split
from tholos.crypto.keys import KeyShare, PublicKeyPackage
from tholos.crypto.secret import SecretScalar


def deal(
    group: Group[Any], t: int, ids: Sequence[int] | int, secret: int | None = None
) -> list[KeyShare[Any]]:
    """Shamir-share `secret` (random if None) and wrap the shares as KeyShares."""
    return deal_key_shares(group, secret, t, range(1, ids + 1) if isinstance(ids, int) else ids)


def refreshed(shares: Sequence[KeyShare[Any]]) -> list[KeyShare[Any]]:
    """Proactive refresh emulated by adding a fresh sharing of zero (same public key)."""
    public = shares[0].public
    group = public.group
    ids = [ks.identifier for ks in shares]
    zero = split(group, 0, public.threshold, ids)
    new_public = PublicKeyPackage(
        group=group,
        threshold=public.threshold,
        group_public_key=public.group_public_key,
        verifying_shares={
            i: group.add(public.verifying_shares[i], group.base_mul(zero[i])) for i in ids
        },
    )
    return [
        KeyShare(
            identifier=ks.identifier,
            secret_share=SecretScalar(
                (ks.secret_share.expose() + zero[ks.identifier]) % group.order
            ),
            public=new_public,
        )
        for ks in shares
    ]


def dkg_shares(group: Group[Any], t: int, n: int) -> list[KeyShare[Any]]:
    """Key shares from the generic DKG's in-memory driver, one per participant 1..n. A change in
    what `run_dkg` returns fails here (it must never turn the tests that use it into skips)."""
    result = dkg.run_dkg(group, t, list(range(1, n + 1)), b"tholos-test")
    assert isinstance(result, dict), f"run_dkg returned {type(result).__name__}, not a dict"
    assert sorted(result) == list(range(1, n + 1)), f"run_dkg gave shares for {sorted(result)}"
    shares = [result[i] for i in range(1, n + 1)]
    assert all(isinstance(ks, KeyShare) for ks in shares), "run_dkg values are not KeyShares"
    assert all(ks.identifier == i for i, ks in enumerate(shares, start=1))
    return shares
