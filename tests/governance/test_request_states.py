"""What a governed request shows its users: awaiting-approval (with what is missing), refused,
signed, expired, cancelled; and cancellation by the initiator (signed) or an admin only.

Real NodeServices with NodeGovernance over in-memory transports (the fixture of
test_gateway_retry: n=4, t=2, one treasury approval per request).
"""

from __future__ import annotations

import time

import pytest

from tholos.gateway.request_status import AWAITING_APPROVAL, EXPIRED, expire
from tholos.gateway.service import GatewayError
from tholos.governance import (
    ApprovalRequirement,
    KillSwitchEngage,
    User,
    approve,
    sign_cancellation,
    sign_kill_switch,
)
from tholos.governance.approvals import describe_missing

from .test_gateway_retry import CLUSTER, Governed, governed  # noqa: F401  (fixture)


@pytest.mark.asyncio
async def test_waiting_for_approval_is_not_a_refusal(governed: Governed) -> None:  # noqa: F811
    req, _ = governed.item(approved=False)
    (t,) = await governed.g.create([(req, [])])
    assert t.status == "awaiting-approval", (t.status, t.error)
    assert "needs 1 more from treasury" in t.error, t.error
    assert governed.g.get(t.request_id).summary()["status"] == "awaiting-approval"
    listed = governed.g.list_requests("awaiting-approval", 10)
    assert [r["request_id"] for r in listed] == [t.request_id]
    t = await governed.g.approve(
        t.request_id, approve(req, "approver-1", governed.keys["approver-1"])
    )
    assert t.status == "signed" and t.signature, (t.status, t.error)


@pytest.mark.asyncio
async def test_kill_switch_is_refused_not_awaiting(governed: Governed) -> None:  # noqa: F811
    engage = KillSwitchEngage(
        cluster_id=CLUSTER, governance_version=0, signer="admin-1", issued_at=int(time.time())
    )
    out = await governed.g.kill_switch(
        sign_kill_switch(engage, governed.keys["admin-1"]).model_dump(mode="json")
    )
    assert out["engaged_on"] == 4, out
    (t,) = await governed.g.create([governed.item(approved=True)])
    assert t.status == "refused" and "kill-switch" in t.error, (t.status, t.error)
    with pytest.raises(GatewayError) as err:  # final: approving again changes nothing
        await governed.g.approve(t.request_id, t.approvals[0])
    assert err.value.status == 409 and governed.g.get(t.request_id).status == "refused"


@pytest.mark.asyncio
async def test_initiator_cancels_and_nothing_signs_it_after(governed: Governed) -> None:  # noqa: F811
    req, _ = governed.item(approved=False)
    (t,) = await governed.g.create([(req, [])])
    assert t.status == AWAITING_APPROVAL
    wrong = [
        ("approver-1", sign_cancellation(req, governed.keys["approver-1"]), 403),  # not initiator
        ("initiator", sign_cancellation(req, governed.keys["approver-1"]), 403),  # wrong key
        ("initiator", "00" * 64, 403),
    ]
    for user, sig, code in wrong:
        with pytest.raises(GatewayError) as err:
            await governed.g.cancel(t.request_id, user, sig)
        assert err.value.status == code, (user, err.value)
        assert governed.g.get(t.request_id).status == AWAITING_APPROVAL
    t = await governed.g.cancel(
        t.request_id, "initiator", sign_cancellation(req, governed.keys["initiator"])
    )
    assert t.status == "cancelled" and governed.g.get(t.request_id).status == "cancelled"
    approval = approve(req, "approver-1", governed.keys["approver-1"])
    with pytest.raises(GatewayError) as err:
        await governed.g.approve(t.request_id, approval)
    assert err.value.status == 409 and err.value.code == "request_closed"
    with pytest.raises(GatewayError) as err:
        await governed.g.cancel(t.request_id, "", "", admin=True)
    assert err.value.status == 409
    # the nodes tombstoned it: they refuse to sign it, approvals or not
    assert all(governed.journal(i, t.request_id) == "refused" for i in range(1, 5))


@pytest.mark.asyncio
async def test_admin_cancels_without_signature_and_signed_cannot_be(governed: Governed) -> None:  # noqa: F811
    req, _ = governed.item(approved=False)
    (t,) = await governed.g.create([(req, [])])
    t = await governed.g.cancel(t.request_id, "", "", admin=True)
    assert t.status == "cancelled"
    (s,) = await governed.g.create([governed.item(approved=True)])
    assert s.status == "signed"
    with pytest.raises(GatewayError) as err:
        await governed.g.cancel(s.request_id, "", "", admin=True)
    assert err.value.status == 409 and err.value.code == "already_signed"


@pytest.mark.asyncio
async def test_open_request_past_expiry_shows_expired(governed: Governed) -> None:  # noqa: F811
    req, _ = governed.item(approved=False)
    (t,) = await governed.g.create([(req, [])])
    assert not expire(t, now=req.intent.expires_at - 1) and t.status == AWAITING_APPROVAL
    assert expire(t, now=req.intent.expires_at) and t.status == EXPIRED
    assert not expire(t, now=req.intent.expires_at + 10)  # final states stay as they are


def _user(name: str, *groups: str) -> User:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tholos.governance._keys import public_key_hex

    key = public_key_hex(Ed25519PrivateKey.generate())
    return User(user_id=name, public_key=key, roles=("approver",), groups=groups)


def test_missing_counts_distinct_people_per_group() -> None:
    reqs = [
        ApprovalRequirement(group="treasury", count=2),
        ApprovalRequirement(group="risk", count=1),
    ]
    both = _user("both", "treasury", "risk")
    assert describe_missing(reqs, []) == "2 more from treasury and 1 more from risk"
    assert describe_missing(reqs, [both]) == "1 more from treasury and 1 more from risk"
    assert describe_missing(reqs, [both, _user("t1", "treasury")]) == "1 more from risk"
    assert describe_missing(reqs, [both, _user("t1", "treasury"), _user("r1", "risk")]) == ""
