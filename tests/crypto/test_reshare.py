"""Resharing to a new committee: same group key, new threshold and members, old shares useless."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.crypto.dkg_support import assert_shares_consistent, assert_signs, completed, secret_of
from tholos.crypto.dkg import Round1Package, Round2Package, drive, run_dkg
from tholos.crypto.errors import InvalidInput, InvalidParticipants, ProtocolAbort
from tholos.crypto.groups import ED25519, SECP256K1
from tholos.crypto.reshare import ReshareParticipant, run_reshare
from tholos.crypto.secret import SecretScalar

gid = pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=lambda g: g.name)


@gid
@pytest.mark.parametrize(
    ("t", "n", "dealers", "t2", "new"),
    [
        (2, 3, [1, 2], 3, [1, 2, 4, 5, 6]),  # grow, keep two members
        (2, 4, [2, 3, 4], 2, [5, 6, 7]),  # replace everybody
        (3, 5, [1, 3, 5], 1, [1, 9]),  # shrink
        (1, 1, [1], 2, [1, 2, 3]),
    ],
)
def test_reshare(group: Any, t: int, n: int, dealers: list[int], t2: int, new: list[int]) -> None:
    old = run_dkg(group, t, list(range(1, n + 1)), b"k")
    y = old[1].public.group_public_key
    fresh = run_reshare({i: old[i] for i in dealers}, t2, new)
    assert sorted(fresh) == sorted(new)
    assert_shares_consistent(fresh)
    assert group.eq(fresh[new[0]].public.group_public_key, y)
    assert fresh[new[0]].public.threshold == t2
    assert_signs(fresh)
    # Old shares are useless with the new ones (mix of old and new does not give the key).
    if t2 > 1:
        mixed = {1: old[1].secret_share.expose()}
        others = [j for j in new if j != 1][: t2 - 1]
        mixed.update({j: fresh[j].secret_share.expose() for j in others})
        from tholos.crypto.hazmat.shamir import interpolate

        assert not group.eq(group.base_mul(interpolate(mixed, group.order)), y)


@settings(max_examples=8, deadline=None)
@given(
    st.integers(1, 6).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))),
    st.integers(1, 6).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))),
)
def test_reshare_random_parameters(old_tn: tuple[int, int], new_tn: tuple[int, int]) -> None:
    t, n = old_tn
    t2, n2 = new_tn
    old = run_dkg(SECP256K1, t, list(range(1, n + 1)), b"k")
    new_ids = list(range(n, n + n2))  # overlaps the old committee in one member
    fresh = run_reshare({i: old[i] for i in range(1, t + 1)}, t2, new_ids)
    assert_shares_consistent(fresh)
    assert SECP256K1.eq(fresh[new_ids[0]].public.group_public_key, old[1].public.group_public_key)
    assert secret_of(SECP256K1, fresh, new_ids[:t2]) == secret_of(
        SECP256K1, old, list(range(1, t + 1))
    )


@gid
def test_dealer_that_reshares_a_wrong_share_is_excluded(group: Any) -> None:
    old = run_dkg(group, 2, [1, 2, 3], b"k")
    pub = old[1].public
    new_ids = [4, 5, 6]
    everyone = [1, 2, 3, 4, 5, 6]
    parties = {
        i: ReshareParticipant(i, pub, [1, 2, 3], 2, new_ids, b"r", key_share=old.get(i))
        for i in everyone
    }

    def cheat(r1: dict[int, Round1Package[Any]]) -> None:
        p = r1[2]
        r1[2] = Round1Package(
            group, "reshare", p.session, 2, (group.base_mul(7), *p.commitment[1:])
        )

    res = drive(parties, round1_hook=cheat)
    assert parties[4].excluded == {
        2: "commitment does not open to the dealer's old verifying share"
    }
    assert res[1] is None and res[2] is None  # old-only members just deal
    fresh = completed({i: res[i] for i in new_ids})
    assert_shares_consistent(fresh)
    assert_signs(fresh)


@gid
def test_bad_subshare_is_complained_about(group: Any) -> None:
    old = run_dkg(group, 2, [1, 2, 3], b"k")
    pub = old[1].public
    new_ids = [1, 4, 5]
    parties = {
        i: ReshareParticipant(i, pub, [1, 2, 3], 2, new_ids, b"r", key_share=old.get(i))
        for i in [1, 2, 3, 4, 5]
    }

    def cheat(outboxes: dict[int, dict[int, Round2Package[Any]]]) -> None:
        p = outboxes[3][5]
        bad = SecretScalar((p.share.expose() + 1) % group.order)
        outboxes[3][5] = Round2Package(group, "reshare", p.session, 3, 5, bad)

    res = drive(parties, round2_hook=cheat)
    assert parties[1].excluded == {3: "bad share for 5"}
    assert_shares_consistent(completed({i: res[i] for i in new_ids}))


def test_abort_when_fewer_than_old_t_dealers_qualify() -> None:
    old = run_dkg(SECP256K1, 2, [1, 2, 3], b"k")
    pub = old[1].public
    parties = {
        i: ReshareParticipant(i, pub, [1, 2], 2, [4, 5], b"r", key_share=old.get(i))
        for i in [1, 2, 4, 5]
    }
    with pytest.raises(ProtocolAbort) as info:
        drive(parties, round1_hook=lambda r1: r1.pop(1))
    assert info.value.culprits == (1,)


def test_bad_setup() -> None:
    old = run_dkg(SECP256K1, 2, [1, 2, 3], b"k")
    pub = old[1].public
    with pytest.raises(InvalidParticipants):  # fewer than t old holders
        ReshareParticipant(1, pub, [1], 2, [4, 5], b"r", key_share=old[1])
    with pytest.raises(InvalidParticipants):  # dealer that holds no share
        ReshareParticipant(1, pub, [1, 7], 2, [4, 5], b"r", key_share=old[1])
    with pytest.raises(InvalidInput):  # dealer without its share
        ReshareParticipant(1, pub, [1, 2], 2, [4, 5], b"r")
    with pytest.raises(InvalidInput):  # somebody else's share
        ReshareParticipant(1, pub, [1, 2], 2, [4, 5], b"r", key_share=old[2])
    with pytest.raises(InvalidInput):  # a non-dealer given a share
        ReshareParticipant(4, pub, [1, 2], 2, [4, 5], b"r", key_share=old[1])
    with pytest.raises(InvalidParticipants):  # t' > n'
        ReshareParticipant(4, pub, [1, 2], 3, [4, 5], b"r")
    with pytest.raises(InvalidParticipants):  # neither dealer nor receiver
        ReshareParticipant(9, pub, [1, 2], 2, [4, 5], b"r")
    other = run_dkg(SECP256K1, 2, [1, 2, 3], b"other")
    with pytest.raises(InvalidInput):  # share of another key
        ReshareParticipant(1, pub, [1, 2], 2, [4, 5], b"r", key_share=other[1])
