"""Kill switch: any authorised user engages it alone; only an admin quorum releases it."""

from __future__ import annotations

import pytest

from tholos.governance import (
    GovernanceState,
    InvalidDocument,
    InvalidSignature,
    KillSwitchEngage,
    QuorumNotMet,
    Refuse,
    SignedKillSwitch,
    VersionConflict,
    apply_document,
    engage_kill_switch,
    sign_kill_switch,
)

from .conftest import CLUSTER, NOW, Cluster, MemorySeen, evaluator


def _engage(
    cluster: Cluster,
    state: GovernanceState,
    who: str,
    *,
    version: int | None = None,
    key: str | None = None,
) -> SignedKillSwitch:
    engage = KillSwitchEngage(
        cluster_id=CLUSTER,
        governance_version=state.version if version is None else version,
        signer=who,
        issued_at=NOW,
        reason="suspected compromise",
    )
    return sign_kill_switch(engage, cluster.keys[key or who])


def _accepted(cluster: Cluster, state: GovernanceState) -> bool:
    req = cluster.request()
    decision = evaluator().evaluate(
        state,
        req,
        cluster.approvals(req, "tina"),
        now=NOW,
        seen=MemorySeen({"req-000001": "pending"}),
        velocity_entries=[],
    )
    return decision.accepted


def test_one_admin_engages_alone(cluster: Cluster) -> None:
    state = cluster.state()
    assert _accepted(cluster, state)
    engaged = engage_kill_switch(state, _engage(cluster, state, "carol"))
    assert engaged.kill_switch is not None and engaged.kill_switch.engaged_by == "carol"
    assert state.kill_switch is None
    req = cluster.request()
    decision = evaluator().evaluate(
        engaged,
        req,
        cluster.approvals(req, "tina"),
        now=NOW,
        seen=MemorySeen(),
        velocity_entries=[],
    )
    assert isinstance(decision, Refuse) and decision.rule_id == "kill-switch"
    assert isinstance(evaluator().prepare_reservation(engaged, req, NOW), Refuse)


def test_designated_role_engages(cluster: Cluster) -> None:
    state = cluster.state()
    assert engage_kill_switch(state, _engage(cluster, state, "rita")).kill_switch is not None


def test_unauthorised_user_cannot_engage(cluster: Cluster) -> None:
    state = cluster.state()
    with pytest.raises(InvalidSignature):
        engage_kill_switch(state, _engage(cluster, state, "ivan"))
    with pytest.raises(InvalidSignature):
        engage_kill_switch(state, _engage(cluster, state, "alice", key="ivan"))  # forged
    assert state.kill_switch is None


def test_engage_from_bytes_and_other_cluster(cluster: Cluster) -> None:
    state = cluster.state()
    signed = _engage(cluster, state, "bob")
    assert engage_kill_switch(state, signed.model_dump_json().encode()).kill_switch is not None
    other = sign_kill_switch(
        signed.engage.model_copy(update={"cluster_id": "other"}), cluster.keys["bob"]
    )
    with pytest.raises(InvalidDocument):
        engage_kill_switch(state, other)


def test_release_needs_admin_quorum(cluster: Cluster) -> None:
    state = engage_kill_switch(cluster.state(), _engage(cluster, cluster.state(), "alice"))
    release = cluster.next_doc(state, release_kill_switch=True)
    with pytest.raises(QuorumNotMet):
        apply_document(state, cluster.sign(release, ("alice",)))
    assert state.kill_switch is not None
    released = apply_document(state, cluster.sign(release, ("alice", "bob")))
    assert released.kill_switch is None
    assert _accepted(cluster, released)


def test_unrelated_document_keeps_switch_engaged(cluster: Cluster) -> None:
    state = engage_kill_switch(cluster.state(), _engage(cluster, cluster.state(), "alice"))
    new = apply_document(state, cluster.sign(cluster.next_doc(state, note="x"), ("alice", "bob")))
    assert new.kill_switch is not None
    assert not _accepted(cluster, new)


def test_old_engage_cannot_be_replayed_after_release(cluster: Cluster) -> None:
    s0 = cluster.state()
    signed = _engage(cluster, s0, "alice")
    engaged = engage_kill_switch(s0, signed)
    released = apply_document(
        engaged, cluster.sign(cluster.next_doc(engaged, release_kill_switch=True), ("alice", "bob"))
    )
    with pytest.raises(VersionConflict):
        engage_kill_switch(released, signed)
    fresh = _engage(cluster, released, "alice")
    assert engage_kill_switch(released, fresh).kill_switch is not None


def test_engage_from_future_version_refused(cluster: Cluster) -> None:
    state = cluster.state()
    with pytest.raises(VersionConflict):
        engage_kill_switch(state, _engage(cluster, state, "alice", version=5))


def test_engage_at_older_version_still_works(cluster: Cluster) -> None:
    """An emergency signed just before an unrelated document was adopted still stops signing."""
    s0 = cluster.state()
    signed = _engage(cluster, s0, "alice")
    s1 = apply_document(s0, cluster.sign(cluster.next_doc(s0), ("alice", "bob")))
    assert engage_kill_switch(s1, signed).kill_switch is not None


def test_replay_rebuilds_state(cluster: Cluster) -> None:
    from tholos.governance import replay

    s0 = cluster.state()
    d1 = cluster.sign(cluster.next_doc(s0, note="one"), ("alice", "bob"))
    s1 = apply_document(s0, d1)
    ks = _engage(cluster, s1, "carol")
    s2 = engage_kill_switch(s1, ks)
    d2 = cluster.sign(cluster.next_doc(s2, note="two"), ("alice", "bob"))
    s3 = apply_document(s2, d2)
    rebuilt = replay(cluster.genesis(), [d1, ks, d2])
    assert rebuilt.hash == s3.hash and rebuilt.kill_switch == s3.kill_switch
    with pytest.raises(VersionConflict):
        replay(cluster.genesis(), [d2, d1])
