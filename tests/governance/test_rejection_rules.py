"""Who may reject which request (`verify_rejection` with the node's `approving_groups`): only an
approver in a group the request's rules ask approvals from, never its initiator, over exactly that
request's digest with their own key. Anything else is refused naming why."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tholos.governance import (
    KillSwitchEngage,
    Refuse,
    User,
    engage_kill_switch,
    sign_kill_switch,
)
from tholos.governance.rejections import Rejection, reject, verify_rejection

from .conftest import CLUSTER, NOW, Cluster, evaluator


def _verdict(cluster: Cluster, request_amount: int, who: str, **kw: str) -> User | Refuse:
    state = cluster.state()
    req = cluster.request(amount=request_amount, **kw)
    groups = evaluator().approving_groups(state, req, NOW)
    assert not isinstance(groups, Refuse), groups
    return verify_rejection(state, req, reject(req, who, cluster.keys[who]), groups)


def test_the_groups_asked_decide_who_may_reject(cluster: Cluster) -> None:
    state = cluster.state()
    small, large = cluster.request(amount=5_000), cluster.request(amount=20_000)
    assert evaluator().approving_groups(state, small, NOW) == {"treasury"}
    assert evaluator().approving_groups(state, large, NOW) == {"treasury", "risk"}
    ok = _verdict(cluster, 5_000, "tina")
    assert isinstance(ok, User) and ok.user_id == "tina"
    risk_on_small = _verdict(cluster, 5_000, "rita")
    assert isinstance(risk_on_small, Refuse) and "not an approver of this request" in (
        risk_on_small.reason
    )
    assert isinstance(_verdict(cluster, 20_000, "rita"), User)  # risk is asked above 10,000
    assert isinstance(_verdict(cluster, 5_000, "dual"), User)
    for who, why in (("audrey", "not an approver"), ("alice", "not an approver")):
        refused = _verdict(cluster, 5_000, who)
        assert isinstance(refused, Refuse) and why in refused.reason, (who, refused)
    own = _verdict(cluster, 5_000, "ian2", initiator="ian2")
    assert isinstance(own, Refuse) and "cancel it instead" in own.reason


def test_a_request_no_rule_allows_has_nobody_to_reject_it(cluster: Cluster) -> None:
    state = cluster.state()
    req = cluster.request(destination="addr-evil")  # deny-listed
    groups = evaluator().approving_groups(state, req, NOW)
    assert isinstance(groups, Refuse) and groups.rule_id == "deny-list"


def test_rejecting_stays_possible_with_the_kill_switch_engaged(cluster: Cluster) -> None:
    engage = KillSwitchEngage(
        cluster_id=CLUSTER, governance_version=0, signer="alice", issued_at=NOW, reason="drill"
    )
    state = engage_kill_switch(cluster.state(), sign_kill_switch(engage, cluster.keys["alice"]))
    assert state.kill_switch is not None
    req = cluster.request()
    assert evaluator().approving_groups(state, req, NOW) == {"treasury"}


def test_another_requests_rejection_and_another_cluster_are_refused(cluster: Cluster) -> None:
    state = cluster.state()
    req = cluster.request(request_id="req-000001")
    other = cluster.request(request_id="req-000002")
    moved = reject(other, "tina", cluster.keys["tina"])
    refused = verify_rejection(state, req, moved, {"treasury"})
    assert isinstance(refused, Refuse) and "for another request" in refused.reason
    relabelled = moved.model_copy(update={"request_id": "req-000001", "digest": req.digest().hex()})
    refused = verify_rejection(state, req, relabelled, {"treasury"})
    assert isinstance(refused, Refuse) and "does not verify" in refused.reason
    foreign = req.model_copy(update={"cluster_id": "another-cluster"})
    refused = verify_rejection(
        state, foreign, reject(foreign, "tina", cluster.keys["tina"]), {"treasury"}
    )
    assert isinstance(refused, Refuse) and refused.rule_id == "cluster"


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=st.integers(min_value=0, max_value=63), flip=st.integers(min_value=1, max_value=255))
def test_any_changed_signature_byte_is_refused(cluster: Cluster, at: int, flip: int) -> None:
    state = cluster.state()
    req = cluster.request()
    good = reject(req, "tina", cluster.keys["tina"])
    sig = bytearray(bytes.fromhex(good.signature))
    sig[at] ^= flip
    bad = Rejection.model_validate({**good.model_dump(), "signature": sig.hex()})
    refused = verify_rejection(state, req, bad, {"treasury"})
    assert isinstance(refused, Refuse) and refused.rule_id == "rejection", refused
    assert isinstance(verify_rejection(state, req, good, {"treasury"}), User)


@pytest.mark.parametrize("field", ["request_id", "approver", "digest", "signature", "kind"])
def test_a_malformed_rejection_names_the_field(field: str) -> None:
    good = {
        "request_id": "req-000001",
        "approver": "tina",
        "digest": "00" * 32,
        "signature": "00" * 64,
    }
    bad = {**good, field: "Not Valid!"}
    with pytest.raises(ValueError, match=field):
        Rejection.model_validate(bad)
