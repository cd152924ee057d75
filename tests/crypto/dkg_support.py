"""Helpers for the key-lifecycle tests (DKG, refresh, reshare, repair, import, BIP32)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from tests.crypto.helpers import INDEPENDENT_VERIFIERS
from tholos.crypto.frost import (
    FROST_BIP340,
    FROST_ED25519_SHA512,
    FROST_SECP256K1_SHA256,
    SigningPackage,
    aggregate,
    commit,
    sign,
    signing_public_key,
)
from tholos.crypto.groups import ED25519, SECP256K1
from tholos.crypto.groups.base import Group
from tholos.crypto.hazmat.shamir import interpolate
from tholos.crypto.keys import KeyShare

SUITES_BY_GROUP: dict[str, list[Any]] = {
    SECP256K1.name: [FROST_SECP256K1_SHA256, FROST_BIP340],
    ED25519.name: [FROST_ED25519_SHA512],
}


def frost_sign(
    suite: Any, shares: Sequence[KeyShare[Any]], message: bytes, *, tweak: int = 0
) -> bytes:
    """Sign with exactly these shares through the FROST safe API and verify the result, by our
    verifier and an independent one."""
    commitments = {}
    nonces = {}
    for ks in shares:
        n, c = commit(suite, ks)
        nonces[ks.identifier] = n
        commitments[ks.identifier] = c
    package = SigningPackage(commitments, message)
    sig_shares = {
        ks.identifier: sign(suite, package, nonces[ks.identifier], ks, tweak=tweak) for ks in shares
    }
    public = shares[0].public
    sig = aggregate(suite, package, sig_shares, public, tweak=tweak)
    pk = signing_public_key(suite, public, tweak=tweak)
    suite.verify(message, sig, pk)
    # ... and by a verifier we did not write (libsodium, libsecp256k1 via coincurve).
    INDEPENDENT_VERIFIERS[suite.name](message, bytes(sig), bytes(pk))
    return bytes(sig)


def assert_signs(shares: Mapping[int, KeyShare[Any]], message: bytes = b"tholos dkg") -> None:
    """The first t and the last t holders each produce a valid signature in every suite."""
    ids = sorted(shares)
    t = shares[ids[0]].public.threshold
    group = shares[ids[0]].group
    for suite in SUITES_BY_GROUP[group.name]:
        for subset in {tuple(ids[:t]), tuple(ids[-t:])}:
            frost_sign(suite, [shares[i] for i in subset], message)


def completed(results: Mapping[int, KeyShare[Any] | None]) -> dict[int, KeyShare[Any]]:
    """The KeyShares of a `drive` result, asserting every participant got one."""
    out = {}
    for i, ks in results.items():
        assert ks is not None, f"participant {i} got no share"
        out[i] = ks
    return out


def secret_of(group: Group[Any], shares: Mapping[int, KeyShare[Any]], ids: Sequence[int]) -> int:
    return interpolate({i: shares[i].secret_share.expose() for i in ids}, group.order)


def assert_shares_consistent(shares: Mapping[int, KeyShare[Any]]) -> None:
    """Every holder has the same public package; t-subsets interpolate to the group key."""
    ids = sorted(shares)
    first = shares[ids[0]].public
    g = first.group
    for ks in shares.values():
        assert ks.public == first
    first.check_consistent()
    t = first.threshold
    subsets = list(itertools.islice(itertools.combinations(ids, t), 6))
    for subset in subsets:
        assert g.eq(g.base_mul(secret_of(g, shares, subset)), first.group_public_key)
