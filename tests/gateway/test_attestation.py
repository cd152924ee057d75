"""Attestation in an in-memory governed cluster (real NodeService + NodeGovernance + node and
gateway attestation over the wire transport): the genesis pins build A; node 4 attests to build B,
so the gateway leaves it out and every node refuses its protocol messages, even when a hostile
gateway relays them; pinning B by a quorum-signed document lets it back in. Without pins nothing
is enforced and the status says so."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.gateway.conftest import Cluster, governed_cluster
from tholos.attestation import Measurement, SoftwareProvider
from tholos.attestation.roots import VendorRoots
from tholos.audit import KIND_MEASUREMENT
from tholos.cluster.governance_init import DEMO_USERS, default_policy, make_genesis
from tholos.gateway import attestation, repair
from tholos.gateway.requests import attach
from tholos.gateway.service import GatewayError
from tholos.governance import GovernanceDocument, SignedDocument, approve, sign_document
from tholos.governance.measurements import AllowedMeasurement
from tholos.governance.request_builder import build_request
from tholos.node.attestation import NodeAttestation, pins_of
from tholos.node.service import NodeService, RequestRefused
from tholos.rpc import node_pb2 as pb

CLUSTER = "tholos-attest"
pytestmark = pytest.mark.asyncio


def build(tag: bytes) -> Measurement:
    return Measurement(hashlib.sha256(tag).digest(), "tholos", "0.1.0", 1, None, False)


BUILD_A, BUILD_B = build(b"build a"), build(b"build b")


def pin(*builds: Measurement) -> tuple[AllowedMeasurement, ...]:
    return tuple(
        AllowedMeasurement(kind="software", software_measurement=b.hex, label=f"build {i}")
        for i, b in enumerate(builds)
    )


def equip(s: NodeService, m: Measurement) -> None:
    """Give a node the attestation server.main gives it (software provider, its own pins)."""
    key = Ed25519PrivateKey.from_private_bytes(s.identity.secret[:32])
    pins = pins_of(s.governance) if s.governance is not None else list
    audit = s.governance.audit if s.governance is not None else None
    s.attestation = NodeAttestation(
        s.identity, m, SoftwareProvider(key, m.digest), VendorRoots().verifiers(), pins, audit
    )


def measurements_seen(s: NodeService) -> list[dict[str, Any]]:
    assert s.governance is not None
    return s.governance.audit.payloads(KIND_MEASUREMENT)


def by_id(c: Cluster) -> dict[int, dict[str, Any]]:
    return {n["node_id"]: n for n in c.gateway.nodes.status()}


def next_document(c: Cluster, users: dict[str, Ed25519PrivateKey], **policy: Any) -> Any:
    gov = c.services[1].governance
    assert gov is not None and gov.state is not None
    cur = gov.state.document
    doc = GovernanceDocument(
        kind="governance",
        cluster_id=cur.cluster_id,
        version=cur.version + 1,
        prev_hash=cur.digest().hex(),
        issued_at=int(time.time()),
        users=cur.users,
        admin_quorum=cur.admin_quorum,
        policy=cur.policy.model_copy(update=policy),
    )
    sigs = tuple(sign_document(doc, a, users[a]) for a in ("admin-1", "admin-2"))
    return SignedDocument(document=doc, signatures=sigs).model_dump(mode="json")


async def signs(c: Cluster, users: dict[str, Ed25519PrivateKey], key_id: str) -> str:
    """The status of a governed signing request on `key_id` (one treasury approval)."""
    req = build_request(
        CLUSTER,
        "initiator",
        users["initiator"],
        key_id=key_id,
        chain="raw",
        asset="RAW",
        destination="addr-1",
        amount=5,
        data=os.urandom(16),
    )
    (t,) = await attach(c.gateway, None).create(
        [(req, [approve(req, "approver-1", users["approver-1"])])]
    )
    return str(t.status)


async def test_an_unpinned_node_is_left_out_until_its_build_is_pinned(tmp_path: Path) -> None:
    users = {name: Ed25519PrivateKey.generate() for name in DEMO_USERS}
    policy = default_policy().model_copy(update={"allowed_measurements": pin(BUILD_A)})
    genesis = make_genesis(CLUSTER, users, policy)
    async with governed_cluster(tmp_path, genesis, CLUSTER) as c:
        for s in c.services.values():
            equip(s, BUILD_A)
        gw = c.gateway
        side = attestation.of(gw)
        await side.session()
        assert side.summary()["enforced"] is True
        for n in by_id(c).values():
            a = n["attestation"]
            assert n["state"] == "up" and a["pinned"] is True
            assert a["provider"] == "software" and a["hardware_guarantee"] is False
            assert a["software_measurement"] == BUILD_A.hex and a["protections"]
        (row,) = await gw.create_keys("bip340")
        assert await signs(c, users, row.key_id) == "signed"

        # node 4 now runs build B, which no document pins: left out, the others still sign
        equip(c.services[4], BUILD_B)
        await side.session()
        st = by_id(c)
        assert st[4]["state"] == "excluded" and "not pinned" in st[4]["reason"]
        assert st[4]["attestation"]["software_measurement"] == BUILD_B.hex
        assert set(st[4]["attestation"]["refused_by"]) == {"1", "2", "3"}
        assert gw.nodes.usable() == [1, 2, 3]
        assert await signs(c, users, row.key_id) == "signed"
        with pytest.raises(GatewayError, match=r"unavailable: \[4\]"):
            await gw.create_keys("bip340")  # a DKG needs every node: refused, node 4 named

        # a hostile gateway relays node 4's messages anyway: every node refuses them
        env = pb.Envelope(sender=4, payload=b"{}", signature=b"\x00" * 64)
        step = pb.ProtocolRequest(protocol="dkg", phase="round2", payload=b"{}", envelopes=[env])
        commitments = [pb.SignerCommitment(signer=j, nonce_id=os.urandom(16)) for j in (1, 4)]
        sign = pb.SignBatchRequest(
            items=[pb.SignItem(request_id="r", key_id=row.key_id, commitments=commitments)]
        )
        for i in (1, 2, 3):
            with pytest.raises(RequestRefused, match="node 4: software measurement"):
                c.services[i].protocol(step)
            with pytest.raises(RequestRefused, match="peer measurement not pinned"):
                c.services[i].sign_batch(sign)

        # every node recorded each measurement it saw once, with whether it was pinned
        await side.session()
        seen = [
            (p["node"], p["software_measurement"], p.get("pinned"))
            for p in measurements_seen(c.services[1])
        ]
        assert seen == [
            (1, BUILD_A.hex, None),  # its own, at start
            (2, BUILD_A.hex, True),
            (3, BUILD_A.hex, True),
            (4, BUILD_A.hex, True),
            (4, BUILD_B.hex, False),
        ]

        # the upgrade: pin B beside A (quorum-signed), then node 4 is let back in
        out = await attach(gw, None).submit_document(
            next_document(c, users, allowed_measurements=pin(BUILD_A, BUILD_B))
        )
        assert out["adopted_by"] == 4
        await side.session()
        st = by_id(c)
        assert st[4]["state"] == "up" and st[4]["attestation"]["pinned"] is True
        assert st[4]["attestation"]["refused_by"] == {}
        for i in (1, 2, 3):
            with pytest.raises(RequestRefused) as exc:
                c.services[i].protocol(step)  # past the attestation check: the DKG's own
            assert "measurement" not in str(exc.value)
        (new,) = await gw.create_keys("bip340")
        assert repair.holders(new) == [1, 2, 3, 4]

        # node 4 moves on to build C, unpinned: out again after the next session
        equip(c.services[4], build(b"build c"))
        await side.session()
        assert by_id(c)[4]["state"] == "excluded"
        with pytest.raises(RequestRefused, match="node 4"):
            c.services[1].protocol(step)


async def test_without_pins_nothing_is_enforced(tmp_path: Path) -> None:
    c = Cluster(tmp_path, 4, 2)
    for i, s in c.services.items():
        equip(s, build(b"node %d" % i))  # four different builds
    await c.gateway.start()
    try:
        side = attestation.of(c.gateway)
        await side.session()
        summary = side.summary()
        assert summary["enforced"] is False and "not enforced" in summary["note"]
        st = by_id(c)
        assert all(n["state"] == "up" for n in st.values())
        assert all(n["attestation"]["pinned"] is None for n in st.values())
        assert st[2]["attestation"]["software_measurement"] == build(b"node 2").hex
        (row,) = await c.gateway.create_keys("ed25519")
        assert all(s.vault.has_key(row.key_id) for s in c.services.values())
    finally:
        await c.gateway.stop()


async def test_a_node_without_attestation_is_reported_not_excluded_in_development(
    tmp_path: Path,
) -> None:
    c = Cluster(tmp_path, 3, 2)
    await c.gateway.start()
    try:
        await attestation.of(c.gateway).session()
        st = by_id(c)
        assert all(n["state"] == "up" for n in st.values())
        assert "no attestation configured" in st[1]["attestation"]["reason"]
    finally:
        await c.gateway.stop()
