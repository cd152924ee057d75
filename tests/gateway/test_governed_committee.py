"""Committee changes in a governed cluster: every node reshares only under the admins' committee
change (tholos.governance.committee_changes), checks it itself, records it in its audit chain and
refuses a replay. Real node and gateway code over the in-memory transport (n=4, t=2); signatures
after each change are checked by `cryptography` (Ed25519) and libsecp256k1 (BIP-340, coincurve).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from coincurve import PublicKeyXOnly
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tests.gateway.conftest import Cluster, governed_cluster
from tholos.cli.governance_cmds import build_request
from tholos.cluster.governance_init import DEMO_USERS, make_genesis
from tholos.gateway import committee
from tholos.gateway.errors import GatewayError
from tholos.gateway.requests import GovernedSigning, attach
from tholos.gateway.store import KeyRow
from tholos.governance import approve
from tholos.governance.committee_changes import (
    SignedCommitteeChange,
    new_committee_change,
    sign_committee_change,
)
from tholos.node import committee_governance
from tholos.rpc import node_pb2 as pb
from tholos.transport.refusal import RequestRefused

CLUSTER = "tholos-governed-committee"
pytestmark = pytest.mark.asyncio


@dataclass
class Governed:
    cluster: Cluster
    users: dict[str, Ed25519PrivateKey]
    signing: GovernedSigning

    def change(
        self,
        members: list[int],
        threshold: int | None,
        *,
        keys: list[str] | None = None,
        signers: tuple[str, ...] = ("admin-1", "admin-2"),
        min_threshold: int | None = None,
        version: int = 0,
    ) -> dict[str, Any]:
        ch = new_committee_change(
            CLUSTER,
            version,
            members,
            threshold,
            int(time.time()),
            keys=keys,
            min_threshold=min_threshold,
        )
        sigs = tuple(sign_committee_change(ch, s, self.users[s]) for s in signers)
        out: dict[str, Any] = SignedCommitteeChange(change=ch, signatures=sigs).model_dump(
            mode="json"
        )
        return out

    async def signs(self, row: KeyRow) -> None:
        """A governed request with its approval signs; the signature verifies independently."""
        message = os.urandom(32)
        req = build_request(
            CLUSTER,
            "initiator",
            self.users["initiator"],
            key_id=row.key_id,
            chain="raw",
            asset="RAW",
            destination="addr-1",
            amount=5,
            data=message,
        )
        (t,) = await self.signing.create(
            [(req, [approve(req, "approver-1", self.users["approver-1"])])]
        )
        assert t.status == "signed", t.summary()
        sig, public = bytes.fromhex(t.signature), bytes.fromhex(row.public_key)
        if row.scheme == "ed25519":
            Ed25519PublicKey.from_public_bytes(public).verify(sig, message)
        else:
            assert PublicKeyXOnly(public[-32:]).verify(sig, message)

    def audit(self, i: int) -> list[dict[str, Any]]:
        gov = self.cluster.services[i].governance
        assert gov is not None
        lines = [json.loads(line) for line in gov.audit.export_lines()]
        return [x["payload"] for x in lines if x["type"] == "entry" and x["kind"] == "governance"]

    def epochs(self, row: KeyRow) -> dict[int, int]:
        out = {}
        for i, s in self.cluster.services.items():
            if s.vault.has_key(row.key_id):
                out[i] = s.vault.epoch(s.vault.record(row.key_id))
        return out


@pytest_asyncio.fixture
async def governed(tmp_path: Path) -> AsyncIterator[Governed]:
    users = {name: Ed25519PrivateKey.generate() for name in DEMO_USERS}
    async with governed_cluster(tmp_path, make_genesis(CLUSTER, users), CLUSTER) as c:
        yield Governed(c, users, attach(c.gateway, None))


async def test_governed_reshare_under_the_admins_change(governed: Governed) -> None:
    g = governed
    gw = g.cluster.gateway
    rows = await gw.create_keys("ed25519") + await gw.create_keys("bip340")
    ids = [r.key_id for r in rows]
    doc = g.change([1, 2, 3, 4], 3)
    new = await committee.reshare(gw, ids, 3, None, doc)
    for old, r in zip(rows, new, strict=True):
        assert r.public_key == old.public_key and r.package["threshold"] == 3
        assert g.epochs(r) == dict.fromkeys((1, 2, 3, 4), 1)
        await g.signs(r)
    nonce = doc["change"]["nonce"]
    for i in g.cluster.services:
        (entry,) = [a for a in g.audit(i) if a.get("event") == "committee_change"]
        assert entry["nonce"] == nonce and sorted(entry["keys"]) == sorted(ids)
        assert entry["members"] == [1, 2, 3, 4] and entry["threshold"] == 3
        assert entry["signers"] == ["admin-1", "admin-2"]
        assert {a["event"] for a in g.audit(i)} >= {"committee_change", "reshare_commit"}

    # Remove node 4 from one key (threshold kept): node 4 deals, then deletes its share.
    (r2,) = await committee.reshare(gw, [ids[0]], 3, [1, 2, 3], g.change([1, 2, 3], None))
    assert sorted(r2.package["verifying_shares"]) == ["1", "2", "3"]
    assert not g.cluster.services[4].vault.has_key(ids[0])
    assert any(a.get("event") == "committee_change" and a["keys"] == [ids[0]] for a in g.audit(4))
    await g.signs(r2)


async def _refused_everywhere(
    g: Governed, rows: list[KeyRow], t: int, members: list[int] | None, doc: Any, match: str
) -> None:
    """The gateway's reshare fails, every node refused it, no key changed on any node."""
    gw = g.cluster.gateway
    before = [g.epochs(r) for r in rows]
    counts = {i: len(g.audit(i)) for i in g.cluster.services}
    with pytest.raises(GatewayError) as e:
        await committee.reshare(gw, [r.key_id for r in rows], t, members, doc)
    assert (e.value.status, e.value.code) == (422, "reshare_refused"), e.value
    for i in g.cluster.services:
        assert match in str(e.value)
        assert f"node {i}:" in str(e.value)  # each node refused, not only the first
        new = g.audit(i)[counts[i] :]
        assert [a["event"] for a in new] == ["committee_change-refused"], new
    assert [gw.key(r.key_id) for r in rows] == rows
    assert [g.epochs(r) for r in rows] == before


async def test_nodes_refuse_reshare_without_a_valid_change(governed: Governed) -> None:
    g = governed
    gw = g.cluster.gateway
    (row,) = await gw.create_keys("ed25519")
    await _refused_everywhere(g, [row], 3, None, None, "signed by the admin quorum")
    await _refused_everywhere(
        g, [row], 3, None, g.change([1, 2, 3, 4], 3, signers=("admin-1",)), "QuorumNotMet"
    )
    forged = g.change([1, 2, 3, 4], 3, signers=("admin-1", "approver-1"))
    await _refused_everywhere(g, [row], 3, None, forged, "is not an admin")
    other = g.change([1, 2, 3, 4], 3, version=1)
    await _refused_everywhere(g, [row], 3, None, other, "governance version 1")
    await g.signs(gw.key(row.key_id))


async def test_nodes_refuse_a_change_for_another_reshare(governed: Governed) -> None:
    """A compromised gateway that skips its own check: each node compares the document with the
    reshare it is asked to run (threshold, members, key)."""
    g = governed
    gw = g.cluster.gateway
    row, other = await gw.create_keys("ed25519", 2)
    real = committee.check_change
    try:
        committee.check_change = lambda doc, rows, t, m: doc  # type: ignore[assignment]
        await _refused_everywhere(g, [row], 3, None, g.change([1, 2, 3, 4], 2), "sets threshold 2")
        await _refused_everywhere(
            g, [row], 2, [1, 2, 3], g.change([1, 2, 3, 4], 2), "names members [1, 2, 3, 4]"
        )
        await _refused_everywhere(
            g, [row], 3, None, g.change([1, 2, 3, 4], 3, keys=[other.key_id]), "does not cover"
        )
    finally:
        committee.check_change = real  # type: ignore[assignment]
    # The gateway's own check refuses the same before any node is asked.
    with pytest.raises(GatewayError) as e:
        await committee.reshare(gw, [row.key_id], 3, None, g.change([1, 2, 3, 4], 2))
    assert e.value.code == "committee_change_mismatch"
    await g.signs(gw.key(row.key_id))


async def test_replayed_change_is_refused(governed: Governed) -> None:
    g = governed
    gw = g.cluster.gateway
    (row,) = await gw.create_keys("ed25519")
    up = g.change([1, 2, 3, 4], 3)
    (r1,) = await committee.reshare(gw, [row.key_id], 3, None, up)
    assert r1.package["threshold"] == 3
    (r2,) = await committee.reshare(gw, [row.key_id], 2, None, g.change([1, 2, 3, 4], 2))
    assert r2.package["threshold"] == 2
    await _refused_everywhere(g, [r2], 3, None, up, "already applied")
    assert gw.key(row.key_id).package["threshold"] == 2
    await g.signs(gw.key(row.key_id))


async def test_min_threshold_follows_the_change_durably(governed: Governed) -> None:
    g = governed
    gw = g.cluster.gateway
    (row,) = await gw.create_keys("ed25519")
    (r1,) = await committee.reshare(
        gw, [row.key_id], 3, None, g.change([1, 2, 3, 4], 3, min_threshold=3)
    )
    for s in g.cluster.services.values():
        assert s.protocols.min_threshold == 3
    # Below the minimum the admins set: refused, unless a document lowers it.
    await _refused_everywhere(
        g, [r1], 2, None, g.change([1, 2, 3, 4], 2), "below this node's minimum 3"
    )
    with pytest.raises(RequestRefused, match="below this node's minimum 3"):
        _dkg_at(g, 2)  # a key at a lower threshold is refused too
    # Restart: the stored minimum is loaded again.
    for s in g.cluster.services.values():
        s.protocols.min_threshold = 1
        del s._committee_governance  # type: ignore[attr-defined]
        committee_governance.for_service(s)
        assert s.protocols.min_threshold == 3
    (r2,) = await committee.reshare(
        gw, [row.key_id], 2, None, g.change([1, 2, 3, 4], 2, min_threshold=2)
    )
    assert r2.package["threshold"] == 2 and r2.public_key == row.public_key
    for s in g.cluster.services.values():
        assert s.protocols.min_threshold == 2
    await g.signs(r2)


def _dkg_at(g: Governed, t: int) -> None:
    """Round 1 of a DKG at threshold `t`, straight to node 1 (the gateway uses its own t)."""
    body = {
        "batch": os.urandom(16).hex(),
        "participants": [1, 2, 3, 4],
        "sessions": [{"session": os.urandom(16).hex(), "scheme": "ed25519", "threshold": t}],
    }
    req = pb.ProtocolRequest(protocol="dkg", phase="round1", payload=json.dumps(body).encode())
    g.cluster.services[1].protocol(req)
