"""Rejections: an approver of a request signs its rejection; every node checks it itself and then
never signs that request, whatever approvals follow. A forged rejection, one by a user who is no
approver of the request, or one of another request replayed here is refused and changes nothing.

Real NodeServices with NodeGovernance over in-memory transports (the fixture of
test_gateway_retry: n=4, t=2, one treasury approval per request; risk-1 is an approver, but of
group risk, which this policy never asks).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tholos.client import AsyncClient
from tholos.gateway.api import create_app
from tholos.gateway.service import GatewayError
from tholos.governance import SigningRequest, approve
from tholos.governance.rejections import REJECTION_TAG, Rejection, reject
from tholos.node.governance import GovernanceRefused
from tholos.rpc import node_pb2 as pb

from .test_gateway_retry import Governed, governed  # noqa: F401  (fixture)

pytestmark = pytest.mark.asyncio


def _at_node(gv: Governed, node: int, request: SigningRequest, rejection: Rejection) -> Any:
    """Send a rejection straight to one node's governance op (as the gateway relays it)."""
    body = {"request": request.model_dump(mode="json"), "rejection": rejection.model_dump()}
    gov = gv.transports[node].service.governance
    assert gov is not None
    rep = gov.handle(pb.GovernanceRequest(op="reject", payload=json.dumps(body).encode()))
    return json.loads(rep.payload)


def _audit_events(gv: Governed, node: int) -> list[dict[str, Any]]:
    gov = gv.transports[node].service.governance
    assert gov is not None
    lines = [json.loads(x) for x in gov.audit.export_lines()]
    return [x["payload"] for x in lines if x.get("kind") == "decision" and "event" in x["payload"]]


async def test_forged_foreign_and_replayed_rejections_change_nothing(gv: Governed) -> None:
    req, _ = gv.item(approved=False)
    other, _ = gv.item(approved=False)
    (t,) = await gv.g.create([(req, [])])
    assert t.status == "awaiting-approval"
    before = [gv.journal(i, req.intent.request_id) for i in range(1, 5)]
    genuine_of_other = reject(other, "approver-1", gv.keys["approver-1"])
    forged = reject(req, "approver-1", gv.keys["approver-2"])  # another person's key
    wrong = [
        (forged, "rejection signature of approver-1 does not verify"),
        (reject(req, "risk-1", gv.keys["risk-1"]), "not an approver of this request"),
        (reject(req, "auditor", gv.keys["auditor"]), "auditor is not an approver"),
        (reject(req, "initiator", gv.keys["initiator"]), "cancel it instead"),
        (genuine_of_other, "is for another request"),  # replayed from another request
        (  # the other request's signature under this request's id and digest
            genuine_of_other.model_copy(
                update={"request_id": req.intent.request_id, "digest": req.digest().hex()}
            ),
            "does not verify",
        ),
    ]
    for rejection, why in wrong:
        for i in range(1, 5):
            with pytest.raises(GovernanceRefused, match=why):
                _at_node(gv, i, req, rejection)
        with pytest.raises(GatewayError) as err:
            await gv.g.reject(req.intent.request_id, rejection)
        assert err.value.status in (403, 422), (why, err.value)
        assert [gv.journal(i, req.intent.request_id) for i in range(1, 5)] == before, why
        assert gv.g.get(req.intent.request_id).status == "awaiting-approval"
    # every refusal is in every node's audit chain (each case came twice, straight and through
    # the gateway, except the one the gateway refused itself: another request's id, 422)
    refused = [e for e in _audit_events(gv, 1) if e["event"] == "rejection-refused"]
    assert len(refused) == 2 * len(wrong) - 1, refused
    assert all(e["request_id"] == req.intent.request_id for e in refused), refused
    t = await gv.g.approve(req.intent.request_id, approve(req, "approver-1", gv.keys["approver-1"]))
    assert t.status == "signed", (t.status, t.error)
    # a signed request cannot be rejected (the gateway says so; a node, asked directly, too)
    with pytest.raises(GatewayError) as err:
        await gv.g.reject(req.intent.request_id, reject(req, "approver-2", gv.keys["approver-2"]))
    assert err.value.status == 409 and err.value.code == "already_signed"
    signer = t.signers[0]
    with pytest.raises(GovernanceRefused, match="signed already"):
        _at_node(gv, signer, req, reject(req, "approver-2", gv.keys["approver-2"]))


async def test_a_node_refuses_a_rejected_request_for_good(gv: Governed) -> None:
    """Rejected straight at every node (whatever the gateway does): approvals that meet the
    policy get no share from any node, now or after the gateway retries."""
    req, _ = gv.item(approved=False)
    (t,) = await gv.g.create([(req, [])])
    rejection = reject(req, "approver-2", gv.keys["approver-2"])
    assert rejection.signing_message() == REJECTION_TAG + req.digest()
    for i in range(1, 5):
        assert _at_node(gv, i, req, rejection) == {"node_id": f"node-{i}", "rejected": True}
        assert _at_node(gv, i, req, rejection)["rejected"]  # idempotent
        assert gv.journal(i, req.intent.request_id) == "refused"
        events = [e for e in _audit_events(gv, i) if e["event"] == "rejected"]
        assert events[-1]["by"] == "approver-2" and events[-1]["signature"] == rejection.signature
        assert events[-1]["digest"] == req.digest().hex()
    # The gateway did not relay it and still shows the request open: enough approvals now.
    approvals = [approve(req, a, gv.keys[a]) for a in ("approver-1", "approver-2")]
    t = await gv.g.approve(req.intent.request_id, approvals[0])
    assert t.status == "refused" and not t.signature, (t.status, t.error)
    assert "journal" in {v["rule_id"] for v in t.refusals.values()}, t.refusals
    assert all(gv.journal(i, req.intent.request_id) == "refused" for i in range(1, 5))
    # A fresh submission of the same request with its approvals: still no share anywhere.
    gv.g._cache.clear()
    gv.g.db.execute("DELETE FROM signing_requests")
    (again,) = await gv.g.create([(req, approvals)])
    assert again.status != "signed" and not again.signature, (again.status, again.error)
    assert all(gv.journal(i, req.intent.request_id) == "refused" for i in range(1, 5))


async def test_gateway_and_rest_rejection(gv: Governed) -> None:
    """POST /v1/signing-requests/{id}/reject through the SDK (signed by the SDK with the
    approver's key): `rejected`, final; approving afterwards is refused, every node refused it."""
    req, _ = gv.item(approved=False)
    (t,) = await gv.g.create([(req, [])])
    app = create_app(lambda: gv.gw)
    app.state.gateway = gv.gw  # started by the fixture (no lifespan here)
    transport = httpx.ASGITransport(app=app)
    async with AsyncClient("http://gw", None, transport=transport) as sdk:
        shown = await sdk.reject_request(t.request_id, "approver-1", gv.keys["approver-1"])
        assert shown.status == "rejected" and shown.error == "rejected by approver-1", shown
        assert (await sdk.signing_request(t.request_id)).status == "rejected"
        r = await sdk.http.post(
            f"/v1/signing-requests/{t.request_id}/approvals",
            json={"approval": approve(req, "approver-2", gv.keys["approver-2"]).model_dump()},
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "request_closed", r.text
        r = await sdk.http.post(
            f"/v1/signing-requests/{t.request_id}/reject",
            json={"rejection": reject(req, "approver-2", gv.keys["approver-2"]).model_dump()},
        )
        assert r.status_code == 409, r.text
        # a malformed body: 400 naming the field, nothing changes
        r = await sdk.http.post(
            f"/v1/signing-requests/{t.request_id}/reject", json={"rejection": {"approver": "x"}}
        )
        assert r.status_code == 400 and "rejection" in r.text, r.text
    assert gv.g.get(t.request_id).status == "rejected"
    assert all(gv.journal(i, t.request_id) == "refused" for i in range(1, 5))


async def test_a_forged_rejection_over_rest_is_403_and_changes_nothing(gv: Governed) -> None:
    req, _ = gv.item(approved=False)
    (t,) = await gv.g.create([(req, [])])
    before = [gv.journal(i, t.request_id) for i in range(1, 5)]
    app = create_app(lambda: gv.gw)
    app.state.gateway = gv.gw
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as h:
        forged = reject(req, "approver-1", gv.keys["risk-1"])
        r = await h.post(
            f"/v1/signing-requests/{t.request_id}/reject", json={"rejection": forged.model_dump()}
        )
    assert r.status_code == 403 and r.json()["error"]["code"] == "rejection_refused", r.text
    assert "does not verify" in r.text
    assert gv.g.get(t.request_id).status == "awaiting-approval"
    assert [gv.journal(i, t.request_id) for i in range(1, 5)] == before


@pytest.fixture
def gv(governed: Governed) -> Governed:  # noqa: F811
    return governed
