"""DKG fast paths: the aggregate Feldman check of round 3, forward-difference evaluation of the
verifying shares, and round-1 proofs parsed without re-validating R."""

from __future__ import annotations

from typing import Any

import pytest

from tests.crypto.dkg_support import assert_shares_consistent, assert_signs, completed
from tholos.crypto import dkg
from tholos.crypto.dkg import (
    ComplaintsPackage,
    DkgParticipant,
    Round1Package,
    Round2Package,
    drive,
)
from tholos.crypto.errors import ProtocolAbort
from tholos.crypto.groups import ED25519, SECP256K1
from tholos.crypto.secret import SecretScalar

GROUPS = [SECP256K1, ED25519]
gid = pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)


def parties(group: Any, t: int, ids: list[int]) -> dict[int, DkgParticipant[Any]]:
    return {i: DkgParticipant(group, i, t, ids, b"fast-path") for i in ids}


def shift(group: Any, outboxes: Any, dealer: int, receiver: int, delta: int) -> None:
    p = outboxes[dealer][receiver]
    bad = SecretScalar((p.share.expose() + delta) % group.order)
    outboxes[dealer][receiver] = Round2Package(group, "dkg", p.session, dealer, receiver, bad)


@gid
def test_honest_run_checks_each_share_only_by_the_sum(group: Any, monkeypatch: Any) -> None:
    calls = []
    real = dkg._share_matches
    monkeypatch.setattr(dkg, "_share_matches", lambda *a: calls.append(a) or real(*a))
    ps = parties(group, 3, list(range(1, 8)))
    results = drive(ps)
    assert calls == []  # no per-dealer check anywhere
    shares = completed(results)
    assert_shares_consistent(shares)
    assert_signs(shares)


@gid
def test_cancelling_errors_of_two_colluding_dealers_do_no_harm_while_both_qualify(
    group: Any,
) -> None:
    """Dealers 2 and 3 send receiver 4 shares off by +d and -d: the sum check passes, nobody
    complains, and 4's final share (the sum) is still consistent with the group key."""
    ids = [1, 2, 3, 4]
    ps = parties(group, 2, ids)
    d = group.random_scalar()

    def collude(outboxes: dict[int, dict[int, Round2Package[Any]]]) -> None:
        shift(group, outboxes, 2, 4, d)
        shift(group, outboxes, 3, 4, -d)

    complaints: dict[int, ComplaintsPackage[Any]] = {}
    results = drive(ps, round2_hook=collude, round3_hook=complaints.update)
    assert all(not c.complaints for c in complaints.values())
    assert all(p.qualified == (1, 2, 3, 4) for p in ps.values())
    shares = completed(results)
    assert_shares_consistent(shares)
    assert_signs(shares)


@gid
def test_cancelling_errors_are_caught_when_qual_changes(group: Any) -> None:
    """The attack the sum check alone would miss: 2 and 3 cancel at receiver 4, then 2 gets itself
    excluded (a bad share to receiver 1). Receiver 4's share over QUAL = {1, 3, 4} would be off by
    -d; it re-checks the remaining shares one by one and aborts naming dealer 3."""
    ids = [1, 2, 3, 4]
    ps = parties(group, 2, ids)
    d = group.random_scalar()

    def collude(outboxes: dict[int, dict[int, Round2Package[Any]]]) -> None:
        shift(group, outboxes, 2, 4, d)
        shift(group, outboxes, 3, 4, -d)
        shift(group, outboxes, 2, 1, 1)

    complaints: dict[int, ComplaintsPackage[Any]] = {}
    with pytest.raises(ProtocolAbort) as info:
        drive(ps, round2_hook=collude, round3_hook=complaints.update)
    assert [(c.accuser, c.accused) for c in complaints[1].complaints] == [(1, 2)]
    assert not complaints[4].complaints
    assert info.value.culprits == (3,)
    assert "3" in str(info.value)
    # The others finished on QUAL = {1, 3, 4} before 4 aborted (drive finishes in id order).
    for i in (1, 2, 3):
        assert ps[i].qualified == (1, 3, 4)


@gid
def test_qual_change_with_honest_remaining_dealers_completes(group: Any) -> None:
    ids = [1, 2, 3, 4]
    ps = parties(group, 2, ids)

    def cheat(outboxes: dict[int, dict[int, Round2Package[Any]]]) -> None:
        shift(group, outboxes, 2, 1, 5)

    results = drive(ps, round2_hook=cheat)
    assert all(p.qualified == (1, 3, 4) for p in ps.values())
    shares = completed(results)
    assert_shares_consistent(shares)
    assert_signs(shares)


@gid
def test_failed_sum_check_names_every_bad_dealer(group: Any) -> None:
    ids = [1, 2, 3, 4, 5]
    ps = parties(group, 2, ids)

    def cheat(outboxes: dict[int, dict[int, Round2Package[Any]]]) -> None:
        shift(group, outboxes, 2, 5, 1)
        shift(group, outboxes, 3, 5, 2)

    complaints: dict[int, ComplaintsPackage[Any]] = {}
    results = drive(ps, round2_hook=cheat, round3_hook=complaints.update)
    assert sorted(c.accused for c in complaints[5].complaints) == [2, 3]
    assert all(p.qualified == (1, 4, 5) for p in ps.values())
    assert_signs(completed(results))


@gid
@pytest.mark.parametrize("t", [1, 2, 3, 4, 5])
@pytest.mark.parametrize(
    "xs", [[1, 2, 3, 4, 5, 6, 7], [3, 4, 5, 6, 7, 8, 9, 10], [1, 2, 5, 9], [7]]
)
def test_forward_differences_match_direct_evaluation(group: Any, t: int, xs: list[int]) -> None:
    commitment = [group.base_mul(group.random_scalar()) for _ in range(t)]
    expected = [dkg._eval_commitment(group, commitment, x) for x in xs]
    got = dkg._eval_commitment_many(group, commitment, xs)
    assert all(group.eq(a, b) for a, b in zip(got, expected, strict=True))


def test_forward_differences_with_identity_terms() -> None:
    g = SECP256K1
    commitment = [g.identity(), g.base_mul(7), g.identity()]
    xs = [1, 2, 3, 4, 5]
    got = dkg._eval_commitment_many(g, commitment, xs)
    assert all(g.eq(a, g.base_mul(7 * x)) for a, x in zip(got, xs, strict=True))


@pytest.mark.parametrize(
    "bad_r",
    [
        bytes(32),  # not canonical / off the prime-order subgroup
        b"\x01" + bytes(31),  # the identity
        bytes.fromhex(
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"
        ),  # order 8
        b"\xff" * 32,  # non-canonical
    ],
)
def test_ed25519_round1_proof_with_invalid_r_is_parsed_then_rejected(bad_r: bytes) -> None:
    ids = [1, 2, 3]
    ps = parties(ED25519, 2, ids)

    def cheat(r1: dict[int, Round1Package[Any]]) -> None:
        d = r1[2].to_dict()
        proof = bytes.fromhex(d["proof"])
        d["proof"] = (bad_r + proof[32:]).hex()
        r1[2] = Round1Package.from_dict(d)

    results = drive(ps, round1_hook=cheat)
    assert ps[1].excluded == {2: "invalid proof of knowledge"}
    assert_signs(completed({i: results[i] for i in (1, 3)}))


def test_ed25519_round1_proof_roundtrip_keeps_r() -> None:
    ps = parties(ED25519, 2, [1, 2])
    pkg = ps[1].round1()
    again = Round1Package.from_dict(pkg.to_dict())
    assert again == pkg
