"""Governed threshold ECDSA and BLS signing: the same checks as FROST requests, by every node.

Real node and gateway code over the in-memory transport (n=4, t=2: ECDSA signs with 3 nodes, BLS
with 2). Signatures are checked by libsecp256k1 (coincurve), eth_keys (Ethereum address recovery)
and py_ecc (BLS proof-of-possession ciphersuite). "direct": a policy without velocity limits (each
signer journals the request as it signs); "reserved": with one (reservation on a write quorum and
journal snapshots first).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from coincurve import PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_keys import keys as eth_keys
from py_ecc.bls import G2ProofOfPossession

from tests.gateway.conftest import Cluster, governed_cluster
from tholos.cli.governance_cmds import build_request
from tholos.cluster.governance_init import DEMO_USERS, make_genesis
from tholos.crypto.ecdsa.signature import EcdsaSignature
from tholos.gateway.requests import GovernedSigning, attach
from tholos.gateway.scheme_protocols import presignatures, rounds_for
from tholos.gateway.service import GatewayError
from tholos.gateway.tracked import Tracked
from tholos.governance import (
    ApprovalRequirement,
    Policy,
    Rule,
    SigningRequest,
    VelocityLimit,
    approve,
    new_request,
    raw_payload,
)
from tholos.node.scheme_protocols import for_service
from tholos.rpc import node_pb2 as pb
from tholos.testing.faults import fault

CLUSTER = "tholos-governed-extra"
pytestmark = pytest.mark.asyncio


def _policy(velocity: bool) -> Policy:
    """One rule: up to 10,000 units with one treasury approval (and a daily limit if asked)."""
    daily = VelocityLimit(limit_id="daily", scope="key", window_seconds=86_400, max_amount=10**9)
    return Policy(
        rules=(
            Rule(
                rule_id="standard",
                max_amount=10_000,
                approvals=(ApprovalRequirement(group="treasury", count=1),),
                velocity=(daily,) if velocity else (),
            ),
        )
    )


@dataclass
class Governed:
    cluster: Cluster
    users: dict[str, Ed25519PrivateKey]
    signing: GovernedSigning

    def request(
        self, key_id: str, data: bytes, amount: int = 500, path: str = "m"
    ) -> SigningRequest:
        return build_request(
            CLUSTER,
            "initiator",
            self.users["initiator"],
            key_id=key_id,
            chain="raw",
            asset="RAW",
            destination="addr-1",
            amount=amount,
            data=data,
            path=path,
        )

    def approvals(self, req: SigningRequest) -> list[Any]:
        return [approve(req, "approver-1", self.users["approver-1"])]

    def presigs(self) -> dict[int, int]:
        """Presignature rows on each node."""
        return {i: for_service(s).presigs.count() for i, s in self.cluster.services.items()}

    def audit(self, i: int) -> list[dict[str, Any]]:
        gov = self.cluster.services[i].governance
        assert gov is not None
        lines = [json.loads(line) for line in gov.audit.export_lines()]
        return [x for x in lines if x["type"] == "entry"]


@pytest_asyncio.fixture
async def governed(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Governed]:
    """4 nodes (t=2), each enforcing a genesis with `_policy`; param "direct" or "reserved"."""
    users = {name: Ed25519PrivateKey.generate() for name in DEMO_USERS}
    genesis = make_genesis(CLUSTER, users, _policy(getattr(request, "param", "") == "reserved"))
    async with governed_cluster(tmp_path, genesis, CLUSTER) as c:
        yield Governed(c, users, attach(c.gateway, None))


def _rules(t: Tracked) -> dict[int, str]:
    return {i: r["rule_id"] for i, r in t.refusals.items()}


async def _ecdsa_key(g: Governed, presign: int = 4) -> tuple[str, bytes]:
    (row,) = await g.cluster.gateway.create_keys("ecdsa")
    presignatures(g.cluster.gateway).auto_refill = False  # presignature counts stay exact
    assert await presignatures(g.cluster.gateway).presign(row.key_id, presign) == presign
    return row.key_id, bytes.fromhex(row.public_key)


def _item(req: SigningRequest, presig_id: bytes, approvals: list[Any], **kw: Any) -> dict[str, Any]:
    """An `ecdsa-sign` item as a compromised gateway could send it to the nodes directly."""
    blob = {
        "request": req.model_dump(mode="json"),
        "approvals": [a.model_dump(mode="json") for a in approvals],
    }
    item = {
        "request_id": req.intent.request_id,
        "key_id": req.intent.key_id,
        "epoch": 0,
        "digest": json.loads(req.payload_bytes())["data"],
        "path": "",
        "presig": presig_id.hex(),
        "governance": json.dumps(blob),
    }
    item.update(kw)
    return item


def _direct(g: Governed, protocol: str, item: dict[str, Any]) -> dict[int, Any]:
    """Send one item to every node, bypassing the gateway; each node's result."""
    payload = json.dumps({"batch": os.urandom(8).hex(), "items": [item]}).encode()
    out = {}
    for i, s in g.cluster.services.items():
        rep = s.protocol(pb.ProtocolRequest(protocol=protocol, phase="sign", payload=payload))
        out[i] = json.loads(rep.envelope.payload)["results"][item["request_id"]]
    return out


@pytest.mark.parametrize("governed", ["direct", "reserved"], indirect=True)
@pytest.mark.parametrize("path", ["m", "m/0/7"])
async def test_governed_ecdsa_signs_after_approval(governed: Governed, path: str) -> None:
    g = governed
    key_id, root = await _ecdsa_key(g)
    pool = presignatures(g.cluster.gateway).pool_size(key_id)
    before = g.presigs()
    digest = os.urandom(32)
    req = g.request(key_id, digest, path=path)
    (t,) = await g.signing.create([(req, [])])
    assert t.status == "awaiting-approval" and not t.signature, t.summary()
    assert len(t.signers) == 3 and set(_rules(t)) >= set(t.signers), t.summary()
    assert all(_rules(t)[s] == "standard" for s in t.signers) and "approvals" in t.error
    # Refused on every signer before anything is consumed: no presignature is lost.
    assert g.presigs() == before
    assert presignatures(g.cluster.gateway).pool_size(key_id) == pool

    t = await g.signing.approve(req.intent.request_id, g.approvals(req)[0])
    assert t.status == "signed", t.summary()
    public = bytes.fromhex(g.cluster.gateway.derive(key_id, path)["public_key"])
    assert (public == root) == (path == "m")
    assert bytes.fromhex(t.public_key) == public
    sig = bytes.fromhex(t.signature)
    assert len(sig) == 65 and sig[64] in (0, 1)
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
    ecdsa = EcdsaSignature(r, s, sig[64])
    assert ecdsa.is_low_s
    assert PublicKey(public).verify(ecdsa.to_der(), digest, hasher=None)
    assert not PublicKey(public).verify(ecdsa.to_der(), os.urandom(32), hasher=None)
    address = eth_keys.PublicKey.from_compressed_bytes(public).to_checksum_address()
    recovered = eth_keys.Signature(sig).recover_public_key_from_msg_hash(digest)
    assert recovered.to_checksum_address() == address
    # Exactly the 2t-1 = 3 signers used their row of one presignature.
    after = g.presigs()
    assert {i: before[i] - after[i] for i in after} == {i: int(i in t.signers) for i in after}
    for i in t.signers:
        shares = [r for r in g.audit(i) if r["kind"] == "signature_share"]
        assert [r["payload"]["request_id"] for r in shares] == [req.intent.request_id]


@pytest.mark.parametrize("governed", ["direct", "reserved"], indirect=True)
async def test_governed_bls_signs_after_approval(governed: Governed) -> None:
    g = governed
    (row,) = await g.cluster.gateway.create_keys("bls12381")
    message = b"validator attestation " + os.urandom(40)
    req = g.request(row.key_id, message)
    (t,) = await g.signing.create([(req, [])])
    assert t.status == "awaiting-approval" and not t.signature, t.summary()
    assert len(t.signers) == 2 and all(_rules(t)[s] == "standard" for s in t.signers)
    t = await g.signing.approve(req.intent.request_id, g.approvals(req)[0])
    assert t.status == "signed", t.summary()
    public, sig = bytes.fromhex(t.public_key), bytes.fromhex(t.signature)
    assert public.hex() == row.public_key and len(sig) == 96
    assert G2ProofOfPossession.Verify(public, message, sig)
    assert not G2ProofOfPossession.Verify(public, message + b"!", sig)


async def test_over_the_amount_limit_is_refused_by_every_signer(governed: Governed) -> None:
    g = governed
    key_id, _ = await _ecdsa_key(g)
    before = g.presigs()
    req = g.request(key_id, os.urandom(32), amount=10_001)
    (t,) = await g.signing.create([(req, g.approvals(req))])
    assert t.status == "refused" and not t.signature, t.summary()
    assert {_rules(t)[s] for s in t.signers} == {"standard"} and "above 10000" in t.error
    assert g.presigs() == before


async def test_payload_differing_from_the_intent_is_refused(governed: Governed) -> None:
    g = governed
    key_id, _ = await _ecdsa_key(g)
    before = g.presigs()
    good = g.request(key_id, os.urandom(32))
    data = bytes.fromhex(json.loads(good.payload_bytes())["data"])
    payload = raw_payload("raw", "RAW", "addr-1", 400, "", data)  # the intent says 500
    req = new_request(CLUSTER, good.intent, payload, g.users["initiator"])
    (t,) = await g.signing.create([(req, g.approvals(req))])
    assert t.status == "refused" and not t.signature, t.summary()
    assert {_rules(t)[s] for s in t.signers} == {"payload"} and "amount differs" in t.error
    # A gateway sending another digest than the approved payload's: refused by every node.
    pool = presignatures(g.cluster.gateway).pools[key_id]
    item = _item(good, pool[0].session, g.approvals(good), digest=os.urandom(32).hex())
    results = _direct(g, "ecdsa-sign", item)
    assert all(r["error"].startswith("PolicyRefused[payload]") for r in results.values()), results
    assert g.presigs() == before


async def test_ecdsa_payload_must_be_a_32_byte_digest(governed: Governed) -> None:
    g = governed
    key_id, _ = await _ecdsa_key(g, presign=1)
    req = g.request(key_id, os.urandom(33))
    with pytest.raises(GatewayError, match="32-byte digest: the payload's data is 33 bytes"):
        await g.signing.create([(req, g.approvals(req))])
    with pytest.raises(GatewayError):
        g.signing.get(req.intent.request_id)  # nothing stored


@pytest.mark.parametrize("governed", ["direct", "reserved"], indirect=True)
async def test_a_request_id_is_never_signed_twice(governed: Governed) -> None:
    g = governed
    key_id, _ = await _ecdsa_key(g, presign=6)
    req = g.request(key_id, os.urandom(32))
    (t,) = await g.signing.create([(req, g.approvals(req))])
    assert t.status == "signed", t.summary()
    signers, signature = list(t.signers), t.signature
    before = g.presigs()
    # Through the gateway: the signed request is not sent again.
    (again,) = await g.signing.create([(req, g.approvals(req))])
    assert again.signature == signature and (await g.signing.execute(again.request_id)) is again
    # The same approval again (a client's retry) is idempotent: the request, signed once.
    retried = await g.signing.approve(req.intent.request_id, g.approvals(req)[0])
    assert retried.status == "signed" and retried.signature == signature
    with pytest.raises(GatewayError, match="already"):  # a new approval of a signed request
        await g.signing.approve(
            req.intent.request_id, approve(req, "approver-2", g.users["approver-2"])
        )
    # A gateway replaying the approved request to the same signers: each refuses, none consumes.
    ext = rounds_for(g.cluster.gateway)
    job = ext.job(key_id, bytes.fromhex(json.loads(req.payload_bytes())["data"]))
    job.request_id = req.intent.request_id
    job.governance = json.dumps(
        {
            "request": req.model_dump(mode="json"),
            "approvals": [a.model_dump(mode="json") for a in g.approvals(req)],
        }
    )
    job.avoid = tuple(i for i in g.cluster.services if i not in signers)
    await ext.submit([job])
    assert job.signature is None and job.status == 403, job.error
    assert {s: e.split("]")[0] for s, e in job.excluded.items()} == {
        s: "PolicyRefused[replay" for s in signers
    }
    assert g.presigs() == before


async def test_nodes_say_which_requests_they_signed(governed: Governed) -> None:
    """The `statuses` op (a gateway taking a request over asks it): each signer's journal holds
    the request signed, the others do not; a malformed question is refused, naming the field."""
    g = governed
    key_id, _ = await _ecdsa_key(g)
    req = g.request(key_id, os.urandom(32))
    (t,) = await g.signing.create([(req, g.approvals(req))])
    assert t.status == "signed", t.summary()
    rid = req.intent.request_id
    replies = await g.signing.broadcast("statuses", {"request_ids": [rid, "never-seen"]})
    signed = {i for i, r in replies.items() if r["statuses"].get(rid) == "signed"}
    assert signed == set(t.signers)
    assert not any("never-seen" in r["statuses"] for r in replies.values())
    for bad in ({}, {"request_ids": "x"}, {"request_ids": [1]}, {"request_ids": [""]}):
        replies = await g.signing.broadcast("statuses", bad)
        assert all("request_ids" in r["error"] for r in replies.values()), (bad, replies)


async def test_plain_ecdsa_item_is_refused_by_every_node(governed: Governed) -> None:
    """Without a governance blob (a gateway certificate alone), no node gives a share."""
    g = governed
    key_id, _ = await _ecdsa_key(g)
    before = g.presigs()
    pool = presignatures(g.cluster.gateway).pools[key_id]
    req = g.request(key_id, os.urandom(32))
    item = _item(req, pool[0].session, [], governance="")
    results = _direct(g, "ecdsa-sign", item)
    for i, r in results.items():
        assert r == {
            "error": "PolicyRefused[governed]: ecdsa-sign item without a governed request "
            "(approvals)"
        }, (i, r)
        decisions = [x["payload"] for x in g.audit(i) if x["kind"] == "decision"]
        assert decisions[-1]["request_id"] == req.intent.request_id
        assert not decisions[-1]["accepted"]
    # Same through the gateway's ungoverned path.
    job = rounds_for(g.cluster.gateway).job(key_id, os.urandom(32))
    await rounds_for(g.cluster.gateway).submit([job])
    assert job.signature is None and "PolicyRefused[governed]" in job.error
    assert g.presigs() == before


async def test_malformed_governed_items_change_nothing(governed: Governed) -> None:
    """Bad fields are refused before the journal: the request can still be signed afterwards."""
    g = governed
    key_id, _ = await _ecdsa_key(g)
    before = g.presigs()
    pool = presignatures(g.cluster.gateway).pools[key_id]
    req = g.request(key_id, os.urandom(32))
    for bad in ({"digest": "00" * 31}, {"presig": "zz"}, {"governance": {"request": 1}}):
        item = _item(req, pool[0].session, g.approvals(req), **bad)
        results = _direct(g, "ecdsa-sign", item)
        assert all("PolicyRefused" not in r["error"] for r in results.values()), results
    assert g.presigs() == before
    (t,) = await g.signing.create([(req, g.approvals(req))])
    assert t.status == "signed", t.summary()


@pytest.mark.parametrize("protocol", ["ecdsa-sign", "bls-sign"])
@pytest.mark.parametrize(
    ("case", "rule"),
    [("no approval", "standard"), ("over the limit", "standard"), ("other message", "payload")],
)
async def test_forged_items_are_refused_by_every_node(
    governed: Governed, protocol: str, case: str, rule: str
) -> None:
    """What a compromised gateway could send each node directly: refused with the rule named,
    nothing consumed, the refusal in every node's audit chain."""
    g = governed
    if protocol == "ecdsa-sign":
        key_id, _ = await _ecdsa_key(g)
        presig = presignatures(g.cluster.gateway).pools[key_id][0].session
    else:
        key_id, presig = (await g.cluster.gateway.create_keys("bls12381"))[0].key_id, b""
    before = g.presigs()
    req = g.request(key_id, os.urandom(32), amount=10_001 if case == "over the limit" else 500)
    approvals = [] if case == "no approval" else g.approvals(req)
    item = _item(req, presig, approvals)
    if case == "other message":
        item["digest"] = os.urandom(32).hex()
    if protocol == "bls-sign":
        item["message"] = item.pop("digest")
        del item["presig"], item["path"]
    for i, r in _direct(g, protocol, item).items():
        assert r["error"].startswith(f"PolicyRefused[{rule}]"), (i, r)
        decisions = [x["payload"] for x in g.audit(i) if x["kind"] == "decision"]
        assert decisions[-1]["request_id"] == req.intent.request_id
        assert decisions[-1]["rule_id"] == rule and not decisions[-1]["accepted"]
    assert g.presigs() == before


def _prefer(g: Governed, node: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway picks its signers deterministically: `node` first whenever it is usable, then
    the lowest ids (a retry would ask the other signer of a failed attempt again if it could)."""
    nodes = g.cluster.gateway.nodes
    choose = nodes.choose_signers

    async def prefer(holders: list[int], need: int) -> list[int]:
        usable = sorted(nodes.usable(holders), key=lambda h: (h != node, h))
        return sorted(usable[:need]) if len(usable) >= need else await choose(holders, need)

    monkeypatch.setattr(nodes, "choose_signers", prefer)


def _journal(g: Governed, rid: str) -> dict[int, str]:
    out = {}
    for i, s in g.cluster.services.items():
        assert s.governance is not None
        status = s.governance.journal.statuses([rid]).get(rid)
        if status is not None:
            out[i] = status
    return out


async def test_bls_bad_share_retried_on_nodes_not_asked_yet(
    governed: Governed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad partial: its node is named, and the request is signed by two other nodes (the first
    pair journaled it: asking either again would be a replay)."""
    g = governed
    (row,) = await g.cluster.gateway.create_keys("bls12381")
    g.cluster.services[3].vault.hooks = fault("corrupt-shares")
    _prefer(g, 3, monkeypatch)
    message = os.urandom(50)
    req = g.request(row.key_id, message)
    (t,) = await g.signing.create([(req, g.approvals(req))])
    assert t.status == "signed", t.summary()
    assert 3 not in t.signers and t.refusals[3]["reason"] == "invalid signature share"
    assert G2ProofOfPossession.Verify(
        bytes.fromhex(row.public_key), message, bytes.fromhex(t.signature)
    )
    assert _journal(g, req.intent.request_id) == dict.fromkeys(g.cluster.services, "signed")


async def test_ecdsa_bad_share_leaves_the_request_unsigned_at_n4_t2(
    governed: Governed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ECDSA at (4,2) signs with 3 of 4 nodes: after a failed attempt only one node was not asked,
    so the request stays unsigned (never signed twice) and says why."""
    g = governed
    key_id, _ = await _ecdsa_key(g)
    g.cluster.services[2].vault.hooks = fault("corrupt-shares")
    _prefer(g, 2, monkeypatch)
    req = g.request(key_id, os.urandom(32))
    (t,) = await g.signing.create([(req, g.approvals(req))])
    assert t.status == "reserved" and not t.signature, t.summary()
    assert t.refusals[2]["reason"] == "invalid signature share"
    assert "only 1 usable nodes" in t.error and "each asked once" in t.error, t.error
    assert 2 not in g.cluster.gateway.nodes.usable()  # quarantined
    assert len(_journal(g, req.intent.request_id)) == 3
