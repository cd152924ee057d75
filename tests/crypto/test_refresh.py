"""Proactive refresh: same group key, new verifying shares, old shares useless, cheaters excluded."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.crypto.dkg_support import assert_shares_consistent, assert_signs, completed, secret_of
from tholos.crypto.dkg import DkgState, Round1Package, Round2Package, drive, run_dkg
from tholos.crypto.errors import InvalidInput, InvalidParticipants, ProtocolAbort
from tholos.crypto.groups import ED25519, SECP256K1
from tholos.crypto.refresh import RefreshParticipant, run_refresh
from tholos.crypto.repair import run_repair
from tholos.crypto.secret import SecretScalar

gid = pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=lambda g: g.name)


@gid
@pytest.mark.parametrize(("t", "n"), [(1, 1), (2, 4), (3, 7)])
def test_refresh_keeps_key_and_invalidates_old_shares(group: Any, t: int, n: int) -> None:
    old = run_dkg(group, t, list(range(1, n + 1)), b"k")
    new = run_refresh(old, b"refresh-1")
    assert_shares_consistent(new)
    y = old[1].public.group_public_key
    assert group.eq(new[1].public.group_public_key, y)
    if t > 1:
        for i in old:
            assert not group.eq(
                old[i].public.verifying_shares[i], new[i].public.verifying_shares[i]
            )
        # t-1 old shares + 1 new share do not give the key
        mixed = {1: old[1], **{i: new[i] for i in range(2, t + 1)}}
        assert not group.eq(group.base_mul(secret_of(group, mixed, list(mixed))), y)
    assert_signs(new)


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 10).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_refresh_random_parameters(tn: tuple[int, int]) -> None:
    t, n = tn
    old = run_dkg(SECP256K1, t, list(range(1, n + 1)), b"k")
    new = run_refresh(run_refresh(old, b"r1"), b"r2")
    assert_shares_consistent(new)
    assert SECP256K1.eq(new[1].public.group_public_key, old[1].public.group_public_key)


@gid
def test_partial_refresh_then_repair_of_the_absent_holder(group: Any) -> None:
    old = run_dkg(group, 2, [1, 2, 3, 4], b"k")
    ids = [1, 2, 3]
    parties = {i: RefreshParticipant(old[i], b"partial", ids) for i in ids}
    new = {i: ks for i, ks in drive(parties).items() if ks is not None}
    assert_shares_consistent(new)
    # Holder 4 did not take part: its old share no longer matches the new package...
    assert not group.eq(
        group.base_mul(old[4].secret_share.expose()), new[1].public.verifying_shares[4]
    )
    # ...and it gets a current one by repair.
    repaired = run_repair({1: new[1], 3: new[3]}, 4)
    assert_shares_consistent({**new, 4: repaired})


@gid
def test_cheating_dealer_is_excluded(group: Any) -> None:
    old = run_dkg(group, 2, [1, 2, 3], b"k")
    parties = {i: RefreshParticipant(ks, b"r") for i, ks in old.items()}

    def cheat(outboxes: dict[int, dict[int, Round2Package[Any]]]) -> None:
        p = outboxes[3][1]
        bad = SecretScalar((p.share.expose() + 1) % group.order)
        outboxes[3][1] = Round2Package(group, "refresh", p.session, 3, 1, bad)

    new = drive(parties, round2_hook=cheat)
    assert parties[1].excluded == {3: "bad share for 1"} == parties[2].excluded
    honest = {i: new[i] for i in (1, 2)}
    assert all(v is not None for v in honest.values())
    assert_shares_consistent(completed(honest))


@gid
def test_nonzero_constant_is_rejected(group: Any) -> None:
    """A dealer cannot sneak a non-zero constant in: the commitment has only t-1 terms, and one with
    t terms (i.e. a constant term) is excluded."""
    old = run_dkg(group, 2, [1, 2, 3], b"k")
    parties = {i: RefreshParticipant(ks, b"r") for i, ks in old.items()}

    def cheat(r1: dict[int, Round1Package[Any]]) -> None:
        p = r1[2]
        r1[2] = Round1Package(group, "refresh", p.session, 2, (group.base_mul(9), *p.commitment))

    new = drive(parties, round1_hook=cheat)
    assert "commitment has 2 terms" in parties[1].excluded[2]
    assert group.eq(completed(new)[1].public.group_public_key, old[1].public.group_public_key)


def test_abort_when_too_few_dealers_remain() -> None:
    old = run_dkg(SECP256K1, 3, [1, 2, 3], b"k")
    parties = {i: RefreshParticipant(ks, b"r") for i, ks in old.items()}

    def drop(r1: dict[int, Round1Package[Any]]) -> None:
        r1.pop(3)

    with pytest.raises(ProtocolAbort) as info:
        drive(parties, round1_hook=drop)
    assert info.value.culprits == (3,)
    assert parties[1].state is DkgState.FAILED


def test_bad_setup() -> None:
    old = run_dkg(SECP256K1, 2, [1, 2, 3], b"k")
    with pytest.raises(InvalidParticipants):
        RefreshParticipant(old[1], b"r", [1, 2, 9])  # 9 holds no share
    with pytest.raises(InvalidParticipants):
        RefreshParticipant(old[1], b"r", [2, 3])  # not a participant itself
    with pytest.raises(InvalidParticipants):
        RefreshParticipant(old[1], b"r", [1])  # fewer than t
    with pytest.raises(InvalidInput):
        RefreshParticipant(old[1], "r")  # type: ignore[arg-type]


def test_messages_of_another_refresh_are_rejected() -> None:
    old = run_dkg(SECP256K1, 2, [1, 2], b"k")
    a = {i: RefreshParticipant(ks, b"session-a") for i, ks in old.items()}
    b = {i: RefreshParticipant(ks, b"session-b") for i, ks in old.items()}
    a[1].round1()
    pkg_b = b[2].round1()
    with pytest.raises(InvalidInput):
        a[1].round2({2: pkg_b})
    assert a[1].state is DkgState.ROUND1
