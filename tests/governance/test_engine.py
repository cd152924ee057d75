"""The policy engine: the accept path and every refusal path, each naming its rule."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tholos.governance import (
    Accept,
    Approval,
    Decision,
    GovernanceState,
    JournalEntry,
    Refuse,
    Reservation,
    SigningRequest,
)
from tholos.governance.requests import APPROVAL_TAG

from .conftest import NOW, SATURDAY, Cluster, MemorySeen, entry, evaluator


@pytest.fixture
def state(cluster: Cluster) -> GovernanceState:
    return cluster.state()


def run(
    state: GovernanceState,
    request: SigningRequest,
    approvals: Sequence[Approval],
    *,
    now: int = NOW,
    seen: MemorySeen | None = None,
    entries: Sequence[JournalEntry] = (),
) -> Decision:
    if seen is None:
        seen = MemorySeen({request.intent.request_id: "pending"})
    return evaluator().evaluate(
        state, request, approvals, now=now, seen=seen, velocity_entries=entries
    )


def refused(decision: Decision | Reservation, rule_id: str, text: str = "") -> None:
    assert isinstance(decision, Refuse), decision
    assert decision.rule_id == rule_id, decision
    assert text in decision.reason, decision


def test_accept_small(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request()
    decision = run(state, req, cluster.approvals(req, "tina"))
    assert isinstance(decision, Accept)
    assert decision.rules == ("hours", "small")
    assert decision.digest == req.digest()
    assert decision.message == b"\x01\x02tx"


def test_accept_large_needs_two_treasury_and_one_risk(
    cluster: Cluster, state: GovernanceState
) -> None:
    req = cluster.request(amount=50_000)
    assert run(state, req, cluster.approvals(req, "tina", "tom", "rita")).accepted
    assert run(state, req, cluster.approvals(req, "tina", "dual", "rita")).accepted


def test_not_enough_approvals(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request()
    refused(run(state, req, []), "small", "needs 1 more from treasury")
    big = cluster.request(amount=50_000)
    refused(
        run(state, big, cluster.approvals(big, "tina", "rita")),
        "large",
        "valid approvers: rita, tina",
    )


def test_approvals_from_wrong_group(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request()
    refused(run(state, req, cluster.approvals(req, "rita")), "small", "treasury")
    big = cluster.request(amount=50_000)
    refused(run(state, big, cluster.approvals(big, "tina", "tom", "tess")), "large", "1 from risk")


def test_one_person_fills_one_slot_only(cluster: Cluster, state: GovernanceState) -> None:
    """ "dual" is in treasury and risk, but counts once: tina + dual is not 2 treasury + 1 risk."""
    big = cluster.request(amount=50_000)
    refused(run(state, big, cluster.approvals(big, "tina", "dual")), "large")
    refused(run(state, big, cluster.approvals(big, "tina", "dual", "dual")), "large")


def test_forged_approval_signature(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request()
    good = cluster.approvals(req, "tina")[0]
    forged = good.model_copy(update={"approver": "tom"})  # tina's signature under tom's name
    refused(run(state, req, [forged]), "approvals", "tom does not verify")
    refused(run(state, req, [good, forged]), "approvals", "tom does not verify")


def test_approval_for_another_request(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request()
    other = cluster.request(request_id="req-000002")
    moved = cluster.approvals(other, "tina")[0]
    refused(run(state, req, [moved]), "approvals", "another request")
    relabelled = moved.model_copy(update={"request_id": "req-000001"})
    refused(run(state, req, [relabelled]), "approvals", "another request")
    # same request id, different payload: digest differs
    changed = cluster.request(amount=5_001)
    refused(run(state, changed, cluster.approvals(req, "tina")), "approvals", "another request")


def test_initiator_cannot_approve_own_request(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request(initiator="ian2")
    refused(run(state, req, cluster.approvals(req, "ian2")), "approvals", "cannot approve")


def test_non_approver_approval(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request()
    refused(run(state, req, cluster.approvals(req, "alice")), "approvals", "not an approver")


def test_above_limit(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request(amount=1_000_001)
    refused(
        run(state, req, cluster.approvals(req, "tina", "tom", "rita")), "large", "above 1000000"
    )


def test_destination_not_allowed(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request(destination="addr-z")
    refused(run(state, req, cluster.approvals(req, "tina")), "small", "not allowed")


def test_deny_listed(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request(destination="addr-evil")
    refused(run(state, req, cluster.approvals(req, "tina")), "deny-list")


def test_deny_rule(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request(destination="addr-blocked")
    refused(run(state, req, cluster.approvals(req, "tina")), "blocked-dest", "denied")


def test_default_deny(cluster: Cluster, state: GovernanceState) -> None:
    doc = cluster.next_doc(state, policy=state.policy.model_copy(update={"rules": ()}))
    from tholos.governance import apply_document

    empty = apply_document(state, cluster.sign(doc, ("alice", "bob")))
    req = cluster.request()
    refused(run(empty, req, cluster.approvals(req, "tina")), "default-deny")


def test_outside_time_window(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request(created_at=SATURDAY - 60, expires_at=SATURDAY + 3600)
    refused(run(state, req, cluster.approvals(req, "tina"), now=SATURDAY), "hours", "time window")
    late = cluster.request(expires_at=NOW + 7 * 3600)
    refused(run(state, late, cluster.approvals(late, "tina"), now=NOW + 6 * 3600), "hours")


def test_expired(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request(expires_at=NOW + 10)
    refused(run(state, req, cluster.approvals(req, "tina"), now=NOW + 10), "expired")


def test_lifetime_and_clock(cluster: Cluster, state: GovernanceState) -> None:
    long = cluster.request(expires_at=NOW + 30 * 86400)
    refused(run(state, long, cluster.approvals(long, "tina")), "lifetime")
    future = cluster.request(created_at=NOW + 3600, expires_at=NOW + 7200)
    refused(run(state, future, cluster.approvals(future, "tina")), "clock")


def test_kill_switch_engaged(cluster: Cluster, state: GovernanceState) -> None:
    from tholos.governance import KillSwitchEngage, engage_kill_switch, sign_kill_switch

    engage = KillSwitchEngage(
        cluster_id=state.cluster_id, governance_version=0, signer="bob", issued_at=NOW
    )
    engaged = engage_kill_switch(state, sign_kill_switch(engage, cluster.keys["bob"]))
    req = cluster.request()
    refused(run(engaged, req, cluster.approvals(req, "tina")), "kill-switch", "bob")


def test_replayed_request(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request()
    approvals = cluster.approvals(req, "tina")
    refused(run(state, req, approvals, seen=MemorySeen({"req-000001": "signed"})), "replay")
    refused(run(state, req, approvals, seen=MemorySeen({"req-000001": "refused"})), "journal")
    refused(run(state, req, approvals, seen=MemorySeen()), "not-reserved")
    no_reservation = evaluator().evaluate(
        state,
        req,
        approvals,
        now=NOW,
        seen=MemorySeen(),
        velocity_entries=[],
        require_reservation=False,
    )
    assert no_reservation.accepted


def test_velocity_refused(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request(amount=6_000)
    approvals = cluster.approvals(req, "tina")
    spent = [entry("old-00001", 10_000), entry("old-00002", 9_000)]
    assert run(state, req, approvals, entries=spent).accepted
    more = [*spent, entry("old-00003", 1)]
    refused(run(state, req, approvals, entries=more), "small", "key-day")
    # refused entries, other keys, other assets and old entries do not count
    harmless = [
        *spent,
        entry("x-0000001", 9_000, status="refused"),
        entry("x-0000002", 9_000, key_id="k9", wallet=None),
        entry("x-0000003", 9_000, asset="OTHER"),
        entry("x-0000004", 9_000, time=NOW - 60 - 86400),  # window anchored at created_at
        entry("req-000001", 6_000),  # itself
    ]
    assert run(state, req, approvals, entries=harmless).accepted
    count = [entry(f"n-{i:07d}", 1) for i in range(5)]
    refused(run(state, req, approvals, entries=count), "small", "at most 5")


def test_wallet_velocity(cluster: Cluster, state: GovernanceState) -> None:
    big = cluster.request(amount=600_000)
    approvals = cluster.approvals(big, "tina", "tom", "rita")
    other_key = [entry("w-0000001", 900_000, key_id="k2"), entry("w-0000002", 600_000, key_id="k2")]
    refused(run(state, big, approvals, entries=other_key), "large", "wallet-day")
    assert run(state, big, approvals, entries=other_key[:1]).accepted


def test_payload_must_match_intent(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request(payload_destination="addr-b")
    refused(run(state, req, cluster.approvals(req, "tina")), "payload", "destination")
    req = cluster.request(payload_amount=1)
    refused(run(state, req, cluster.approvals(req, "tina")), "payload", "amount")


def test_unparseable_payload_and_unknown_chain(cluster: Cluster, state: GovernanceState) -> None:
    from tholos.governance import new_request

    req = cluster.request()
    bad = new_request(req.cluster_id, req.intent, b'{"amount": 1}', cluster.keys["ivan"])
    refused(run(state, bad, cluster.approvals(bad, "tina")), "payload", "canonical")
    sol = cluster.request(chain="sol")
    refused(run(state, sol, cluster.approvals(sol, "tina")), "payload", "no payload parser")


def test_initiator_checks(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request()
    forged = req.model_copy(update={"initiator_signature": "00" * 64})
    refused(run(state, forged, cluster.approvals(forged, "tina")), "initiator", "does not verify")
    by_approver = cluster.request(initiator="tina")
    refused(run(state, by_approver, cluster.approvals(by_approver, "tom")), "initiator")


def test_other_cluster(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request().model_copy(update={"cluster_id": "other"})
    refused(run(state, req, []), "cluster")


def test_prepare_reservation(cluster: Cluster, state: GovernanceState) -> None:
    req = cluster.request(amount=50_000)
    res = evaluator().prepare_reservation(state, req, NOW)
    assert isinstance(res, Reservation)
    assert (
        res.entry.wallet == "hot" and res.entry.amount == 50_000 and res.entry.status == "pending"
    )
    assert [v.limit_id for v in res.limits] == ["wallet-day"]
    stale = cluster.request(created_at=NOW - 3600)
    refused(evaluator().prepare_reservation(state, stale, NOW), "clock")
    refused(
        evaluator().prepare_reservation(state, cluster.request(destination="addr-evil"), NOW),
        "deny-list",
    )


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(index=st.integers(0, 31), bit=st.integers(0, 7))
def test_approval_over_any_other_digest_refused(cluster: Cluster, index: int, bit: int) -> None:
    state = cluster.state()
    req = cluster.request()
    approval = cluster.approvals(req, "tina")[0]
    digest = bytearray(bytes.fromhex(approval.digest))
    digest[index] ^= 1 << bit
    signed_elsewhere = approval.model_copy(
        update={
            "digest": digest.hex(),
            "signature": cluster.keys["tina"].sign(APPROVAL_TAG + bytes(digest)).hex(),
        }
    )
    refused(run(state, req, [signed_elsewhere]), "approvals", "another request")


def test_decision_record(cluster: Cluster, state: GovernanceState) -> None:
    from tholos.governance import canonical_json, decision_record

    req = cluster.request()
    ok = run(state, req, cluster.approvals(req, "tina"))
    no = run(state, req, [])
    rec = decision_record("req-000001", req.digest(), ok)
    assert rec["accepted"] is True and rec["rules"] == ["hours", "small"]
    rec = decision_record("req-000001", req.digest(), no)
    assert rec["accepted"] is False and rec["rule_id"] == "small"
    assert canonical_json(rec)


def test_huge_amounts_roundtrip(cluster: Cluster) -> None:
    req = cluster.request(amount=2**200)
    again = SigningRequest.model_validate_json(req.model_dump_json())
    assert again == req and again.digest() == req.digest()


def test_velocity_window_anchored_at_creation(cluster: Cluster, state: GovernanceState) -> None:
    """A request approved slowly still counts what was spent within a window of its creation."""
    req = cluster.request(amount=6_000, expires_at=NOW + 2 * 86400)
    approvals = cluster.approvals(req, "tina")
    earlier = [entry("y-0000001", 20_000, time=NOW - 1800, status="signed")]
    later = NOW + 86400 - 100  # Thursday 11:58 UTC: the day after, within business hours
    refused(run(state, req, approvals, now=later, entries=earlier), "small", "key-day")


def test_permissive_rule_cannot_shadow_a_strict_one(
    cluster: Cluster, state: GovernanceState
) -> None:
    """All applying rules must pass: a catch-all allow rule placed first weakens nothing."""
    from tholos.governance import Rule, apply_document

    rules = (Rule(rule_id="anything"), *state.policy.rules)
    doc = cluster.next_doc(state, policy=state.policy.model_copy(update={"rules": rules}))
    new = apply_document(state, cluster.sign(doc, ("alice", "bob")))
    big = cluster.request(amount=50_000)
    refused(run(new, big, cluster.approvals(big, "tina")), "large", "approvals")
    assert run(new, big, cluster.approvals(big, "tina", "tom", "rita")).accepted
