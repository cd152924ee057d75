"""Shamir/Feldman/Lagrange hazmat and the key-material types (redaction, validation, tweaks)."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tholos.crypto.errors import InvalidInput, InvalidParticipants, InvalidShare
from tholos.crypto.groups import ED25519, SECP256K1, Group
from tholos.crypto.hazmat import shamir
from tholos.crypto.keys import KeyShare, PublicKeyPackage
from tholos.crypto.secret import SecretScalar

GROUPS: list[Group[Any]] = [SECP256K1, ED25519]


def dealt(g: Group[Any], t: int, n: int) -> tuple[int, dict[int, int], PublicKeyPackage[Any]]:
    s = g.random_scalar()
    shares = shamir.split(g, s, t, list(range(1, n + 1)))
    pub = PublicKeyPackage(g, t, g.base_mul(s), {i: g.base_mul(v) for i, v in shares.items()})
    return s, shares, pub


@pytest.mark.parametrize("g", GROUPS, ids=lambda g: g.name)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_any_t_shares_reconstruct_fewer_do_not(g: Group[Any], data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 10))
    t = data.draw(st.integers(1, n))
    s, shares, pub = dealt(g, t, n)
    subset = data.draw(st.permutations(list(shares)))[:t]
    assert shamir.interpolate({i: shares[i] for i in subset}, g.order) == s
    pub.check_consistent()
    if t > 1:  # t-1 shares interpolate to a value unrelated to s (except with negligible prob.)
        assert shamir.interpolate({i: shares[i] for i in subset[:-1]}, g.order) != s


@pytest.mark.parametrize("g", GROUPS, ids=lambda g: g.name)
def test_feldman_names_dealer(g: Group[Any]) -> None:
    coeffs = shamir.random_polynomial(g, g.random_scalar(), 2)
    commitment = shamir.commit(g, coeffs)
    good = shamir.evaluate(coeffs, 4, g.order)
    shamir.verify_share(g, commitment, 4, good, dealer=9)
    with pytest.raises(InvalidShare) as exc:
        shamir.verify_share(g, commitment, 4, (good + 1) % g.order, dealer=9)
    assert exc.value.culprits == (9,)


def test_lagrange_at_other_x() -> None:
    g = SECP256K1
    coeffs = shamir.random_polynomial(g, 42, 2)
    pts = {i: shamir.evaluate(coeffs, i, g.order) for i in (1, 3, 8)}
    assert shamir.interpolate(pts, g.order, x=5) == shamir.evaluate(coeffs, 5, g.order)


@pytest.mark.parametrize(
    ("ids", "t"), [([1, 1, 2], 2), ([0, 1, 2], 2), ([1, 2], 3), ([1, 2], 0), ([-1, 2], 1)]
)
def test_bad_participants(ids: list[int], t: int) -> None:
    with pytest.raises(InvalidParticipants):
        shamir.split(SECP256K1, 5, t, ids)


def test_secret_scalar_does_not_leak() -> None:
    s = SecretScalar(123456789)
    assert "123456789" not in repr(s) and "123456789" not in str(s) and "123456789" not in f"{s}"
    with pytest.raises(TypeError):
        _ = s == SecretScalar(123456789)
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(TypeError):
        bool(s)
    assert copy.deepcopy(s).expose() == 123456789
    s.wipe()
    assert s.wiped
    with pytest.raises(Exception, match="wiped"):
        s.expose()


@pytest.mark.parametrize("g", GROUPS, ids=lambda g: g.name)
def test_key_share_roundtrip_redaction_and_tweak(g: Group[Any]) -> None:
    s, shares, pub = dealt(g, 2, 3)
    ks = KeyShare(2, SecretScalar(shares[2]), pub)
    assert str(shares[2]) not in repr(ks)
    again = KeyShare.import_secret(ks.export_secret())
    assert again.secret_share.expose() == shares[2]
    assert PublicKeyPackage.from_dict(pub.to_dict()).to_dict() == pub.to_dict()
    tw = ks.tweaked(77)
    assert g.eq(tw.public.group_public_key, g.base_mul(s + 77))
    tw.public.check_consistent()
    neg = ks.negated()
    assert g.eq(neg.public.group_public_key, g.base_mul(-s))
    with pytest.raises(InvalidInput):
        KeyShare(2, SecretScalar(shares[2] + 1), pub)
    with pytest.raises(InvalidParticipants):
        KeyShare(5, SecretScalar(shares[2]), pub)


def test_malformed_packages_are_refused() -> None:
    _, _, pub = dealt(SECP256K1, 2, 3)
    d = pub.to_dict()
    for mutate in (
        lambda x: x.update(version=99),
        lambda x: x.update(group="p256"),
        lambda x: x.update(group_public_key="02" + "00" * 32),
        lambda x: x["verifying_shares"].update({"1": "zz"}),
        lambda x: x.pop("threshold"),
        lambda x: x.update(threshold=4),
    ):
        bad = copy.deepcopy(d)
        mutate(bad)
        with pytest.raises(InvalidInput):
            PublicKeyPackage.from_dict(bad)
    inconsistent = copy.deepcopy(d)
    inconsistent["verifying_shares"]["1"] = d["verifying_shares"]["2"]
    inconsistent["verifying_shares"]["2"] = d["verifying_shares"]["1"]
    with pytest.raises(InvalidInput):
        PublicKeyPackage.from_dict(inconsistent).check_consistent()
