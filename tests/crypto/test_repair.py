"""Repairable threshold scheme: t helpers rebuild a lost share; cheating helpers are named."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import load_json_vector
from tests.crypto.dkg_support import assert_shares_consistent
from tholos.crypto.dkg import run_dkg
from tholos.crypto.errors import InvalidInput, InvalidParticipants, InvalidShare
from tholos.crypto.groups import ED25519, SECP256K1
from tholos.crypto.repair import (
    RepairCommitment,
    RepairDelta,
    RepairSigma,
    repair_step1,
    repair_step2,
    repair_step3,
    run_repair,
    sum_scalars,
)
from tholos.crypto.secret import SecretScalar

gid = pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=lambda g: g.name)


@gid
@pytest.mark.parametrize(
    ("t", "n", "helpers", "lost"),
    [(2, 3, [1, 3], 2), (3, 5, [1, 4, 5], 2), (3, 5, [1, 2, 3, 4], 5)],
)
def test_repair_recovers_the_share(
    group: Any, t: int, n: int, helpers: list[int], lost: int
) -> None:
    shares = run_dkg(group, t, list(range(1, n + 1)), b"k")
    repaired = run_repair({i: shares[i] for i in helpers}, lost)
    assert repaired.secret_share.expose() == shares[lost].secret_share.expose()
    assert_shares_consistent({**{i: shares[i] for i in helpers}, lost: repaired})


def _setup(group: Any) -> tuple[dict[int, Any], list[int], int, Any, Any]:
    shares = run_dkg(group, 2, [1, 2, 3, 4], b"k")
    hs = [1, 3, 4]
    step1 = {i: repair_step1(shares[i], hs, 2, b"ctx") for i in hs}
    commitments = {i: c for i, (c, _) in step1.items()}
    return shares, hs, 2, step1, commitments


@gid
def test_helper_sending_a_bad_delta_is_named(group: Any) -> None:
    shares, hs, lost, step1, commitments = _setup(group)
    deltas = {i: step1[i][1][3] for i in hs}
    d = deltas[4]
    deltas[4] = RepairDelta(
        group, d.session, 4, 3, SecretScalar((d.value.expose() + 1) % group.order)
    )
    with pytest.raises(InvalidShare) as info:
        repair_step2(shares[3], hs, lost, b"ctx", commitments, deltas)
    assert info.value.culprits == (4,)


@gid
def test_helper_with_inconsistent_commitments_is_named(group: Any) -> None:
    shares, hs, lost, step1, commitments = _setup(group)
    c = commitments[1]
    cs = dict(c.commitments)
    cs[3] = group.base_mul(99)
    commitments[1] = RepairCommitment(group, c.session, 1, cs)
    with pytest.raises(InvalidShare) as info:
        repair_step2(shares[3], hs, lost, b"ctx", commitments, {i: step1[i][1][3] for i in hs})
    assert info.value.culprits == (1,)


@gid
def test_helper_sending_a_bad_sigma_is_named(group: Any) -> None:
    shares, hs, lost, step1, commitments = _setup(group)
    sigmas = {
        j: repair_step2(shares[j], hs, lost, b"ctx", commitments, {i: step1[i][1][j] for i in hs})
        for j in hs
    }
    s = sigmas[3]
    sigmas[3] = RepairSigma(group, s.session, 3, SecretScalar((s.value.expose() + 5) % group.order))
    with pytest.raises(InvalidShare) as info:
        repair_step3(shares[1].public, hs, lost, b"ctx", commitments, sigmas)
    assert info.value.culprits == (3,)
    sigmas[3] = s
    assert repair_step3(shares[1].public, hs, lost, b"ctx", commitments, sigmas).identifier == 2


@gid
def test_bad_setups(group: Any) -> None:
    shares = run_dkg(group, 3, [1, 2, 3, 4], b"k")
    with pytest.raises(InvalidParticipants):
        repair_step1(shares[1], [1, 3], 2, b"c")  # fewer than t helpers
    with pytest.raises(InvalidParticipants):
        repair_step1(shares[1], [1, 2, 3], 2, b"c")  # lost among helpers
    with pytest.raises(InvalidParticipants):
        repair_step1(shares[1], [1, 3, 3, 4], 2, b"c")  # duplicate
    with pytest.raises(InvalidParticipants):
        repair_step1(shares[1], [3, 4, 9], 2, b"c")  # not a helper / unknown helper
    with pytest.raises(InvalidParticipants):
        repair_step1(shares[1], [1, 3, 4], 7, b"c")  # lost id not in the key


@gid
def test_messages_of_another_session_are_rejected(group: Any) -> None:
    shares, hs, lost, step1, commitments = _setup(group)
    with pytest.raises(InvalidInput):  # commitments made for context b"ctx"
        repair_step2(shares[3], hs, lost, b"other", commitments, {i: step1[i][1][3] for i in hs})
    with pytest.raises(InvalidInput):  # a delta addressed to someone else
        repair_step2(shares[3], hs, lost, b"ctx", commitments, {i: step1[i][1][4] for i in hs})


@gid
def test_wire_forms(group: Any) -> None:
    _, _, _, step1, commitments = _setup(group)
    for obj in (commitments[1], step1[1][1][3]):
        d = json.loads(json.dumps(obj.to_dict()))
        assert d["version"] == 1 and d["group"] == group.name
        assert type(obj).from_dict(d).to_dict() == d
    delta = step1[1][1][3]
    assert "redacted" in repr(delta)
    with pytest.raises(InvalidInput):
        RepairDelta.from_dict({**delta.to_dict(), "extra": 1})
    with pytest.raises(InvalidInput):
        RepairCommitment.from_dict({**commitments[1].to_dict(), "type": "repair/delta"})


@gid
def test_zcash_repair_share_vectors(group: Any) -> None:
    """Zcash's repair-share.json: step 2 sums the deltas, step 3 sums the sigmas."""
    name = "secp256k1" if group is SECP256K1 else "ed25519"
    v = load_json_vector("frost", f"zcash_frost_{name}_repair_share_vectors.json")

    def scalar(h: str) -> int:
        return int(group.deserialize_scalar(bytes.fromhex(h)))

    sg = v["scalar_generation"]
    values = [scalar(sg[f"random_scalar_{k}"]) for k in (1, 2, 3)]
    assert sum_scalars(group, values) == scalar(sg["random_scalar_sum"])
    gg = v["sigma_generation"]
    sigmas = [scalar(gg[f"sigma_{k}"]) for k in (1, 2, 3, 4)]
    assert sum_scalars(group, sigmas) == scalar(gg["sigma_sum"])


@settings(max_examples=8, deadline=None)
@given(st.data())
def test_repair_random_parameters(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 10))
    t = data.draw(st.integers(1, n - 1))
    ids = list(range(1, n + 1))
    lost = data.draw(st.sampled_from(ids))
    others = [i for i in ids if i != lost]
    helpers = data.draw(
        st.lists(st.sampled_from(others), min_size=t, max_size=len(others), unique=True)
    )
    shares = run_dkg(SECP256K1, t, ids, b"k")
    repaired = run_repair({i: shares[i] for i in helpers}, lost)
    assert repaired.secret_share.expose() == shares[lost].secret_share.expose()
