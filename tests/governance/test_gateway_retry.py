"""Governed signing through the gateway over in-memory nodes: a failing signer is retried around.

Real NodeServices with NodeGovernance (SQLite journals, audit chains), n=4, t=2, a policy of one
treasury approval. The gateway's commitment pools are filled first, so a dead node is chosen as a
signer without the gateway knowing, and its partner releases shares in the failed session.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.cli.governance_cmds import build_request
from tholos.cluster.governance_init import DEMO_USERS, make_genesis
from tholos.gateway.requests import GovernedSigning, attach
from tholos.gateway.service import Gateway
from tholos.gateway.store import GatewayStore
from tholos.gateway.transport import InMemoryNodeTransport
from tholos.governance import Approval, ApprovalRequirement, Policy, Rule, SigningRequest, approve
from tholos.node import governance as node_gov
from tholos.node.barrier import Barrier
from tholos.node.service import NodeService, RequestRefused
from tholos.node.store import NodeStore
from tholos.node.vault import KeyVault, ShareResult
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SCHEMES
from tholos.schemes import SigningRequest as SchemeRequest
from tholos.transport.e2e import Identity, generate_identity_secret

pytestmark = pytest.mark.asyncio
CLUSTER = "retry-cluster"


@dataclass
class Governed:
    root: Path
    gw: Gateway
    g: GovernedSigning
    transports: dict[int, InMemoryNodeTransport]
    keys: dict[str, Ed25519PrivateKey]
    key_id: str

    def item(self, approved: bool = True) -> tuple[SigningRequest, list[Approval]]:
        req = build_request(
            CLUSTER,
            "initiator",
            self.keys["initiator"],
            key_id=self.key_id,
            chain="raw",
            asset="RAW",
            destination="addr-1",
            amount=5,
            data=os.urandom(32),
        )
        return req, [approve(req, "approver-1", self.keys["approver-1"])] if approved else []

    def journal(self, node: int, request_id: str) -> str | None:
        db = sqlite3.connect(self.root / f"node-{node}" / "governance.db")
        row = db.execute(
            "SELECT status FROM journal WHERE request_id = ?", (request_id,)
        ).fetchone()
        db.close()
        return None if row is None else str(row[0])


@pytest_asyncio.fixture
async def governed(tmp_path: Path) -> AsyncIterator[Governed]:
    secrets = {i: generate_identity_secret() for i in range(1, 5)}
    roster = {i: Identity(i, s).public for i, s in secrets.items()}
    keys = {u: Ed25519PrivateKey.generate() for u in DEMO_USERS}
    rule = Rule(rule_id="one", approvals=(ApprovalRequirement(group="treasury", count=1),))
    genesis = make_genesis(CLUSTER, keys, policy=Policy(rules=(rule,)))
    (tmp_path / "genesis.json").write_text(genesis.model_dump_json())
    transports = {}
    for i, s in secrets.items():
        d = tmp_path / f"node-{i}"
        d.mkdir()
        store = NodeStore(d / "node.db")
        svc = NodeService(
            Identity(i, s, dict(roster)), store, KeyVault(store, Barrier(os.urandom(32)), i), 10**5
        )
        settings = node_gov.Settings(
            mode="governed",
            cluster_id=CLUSTER,
            genesis=tmp_path / "genesis.json",
            genesis_hash=genesis.document.digest(),
            n=4,
            t=2,
        )
        svc.governance = node_gov.NodeGovernance(settings, d, svc.identity, dict(roster))
        transports[i] = InMemoryNodeTransport(svc)
    gw = Gateway(
        dict(transports),
        roster,
        GatewayStore(tmp_path / "gw.db"),
        2,
        rpc_timeout=2.0,
        pool_batch=64,
    )
    await gw.start()
    key_id = (await gw.create_keys("bip340"))[0].key_id
    pool = SCHEMES["bip340"].pool
    for i in transports:  # every node's commitments at hand: a dead one can be chosen unnoticed
        await gw.nodes.take_commitments(i, pool, 1)
    yield Governed(tmp_path, gw, attach(gw, None), transports, keys, key_id)
    await gw.stop()
    gw.store.close()
    for t in transports.values():
        assert t.service.governance is not None
        t.service.governance.close()
        t.service.store.close()


@pytest.mark.parametrize("fault", ["dead", "refusing"])
async def test_failed_signer_is_retried_on_other_nodes(governed: Governed, fault: str) -> None:
    bad = 3
    if fault == "dead":
        governed.transports[bad].down = True
    else:

        def refuse(req: pb.SignBatchRequest) -> pb.SignBatchReply:
            raise RequestRefused("internal error: disk full")

        governed.transports[bad].service.sign_batch = refuse
    results = []
    for _ in range(4):  # rotation: some call picks the bad node first
        results += await governed.g.create([governed.item(), governed.item()])
    assert all(t.status == "signed" for t in results), [(t.status, t.error) for t in results]
    retried = [t for t in results if bad in t.refusals]
    assert retried, "the bad node was never chosen"
    for t in retried:
        assert t.refusals[bad]["rule_id"] == "node"
        assert ("unavailable" if fault == "dead" else "disk full") in t.refusals[bad]["reason"]
        assert bad not in t.signers
        assert t.summary()["refusals"][str(bad)] == t.refusals[bad]
        # The partner of the failed session shared once and was not asked again: at most
        # three journals hold it signed (the partner's and the two final signers').
        signed = [i for i in range(1, 5) if governed.journal(i, t.request_id) == "signed"]
        assert set(t.signers) <= set(signed) and bad not in signed and len(signed) == 3


async def test_policy_refusal_is_not_retried(governed: Governed) -> None:
    (t,) = await governed.g.create([governed.item(approved=False)])
    assert t.status == "awaiting-approval"
    assert sorted(t.refusals) == sorted(t.signers) and len(t.signers) == 2
    assert all(v["rule_id"] == "one" for v in t.refusals.values()), t.refusals


async def test_request_every_signer_faults_on_is_not_retried(governed: Governed) -> None:
    def broken(reqs: list[SchemeRequest], epochs: object = None) -> list[ShareResult]:
        return [ShareResult(r.request_id, error="VaultError: broken") for r in reqs]

    for tr in governed.transports.values():
        tr.service.vault.sign_batch = broken
    (t,) = await governed.g.create([governed.item()])
    assert t.status == "failed" and "VaultError: broken" in t.error, t.error
    assert sorted(t.refusals) == sorted(t.signers) and len(t.signers) == 2


async def test_too_few_signers_left_names_the_failures(governed: Governed) -> None:
    for i in (1, 2, 3):
        governed.transports[i].down = True
    (t,) = await governed.g.create([governed.item()])
    assert t.status == "reserved" and not t.signature
    assert "fewer than 2 usable reserved signers" in t.error, t.error
    assert "unavailable" in t.error and 4 not in t.refusals, t.error


async def test_governed_frost_signs_after_a_refresh(governed: Governed) -> None:
    """Governed FROST items carry the key's refresh epoch, as plain ones do: after a refresh every
    node signs with its new share (none refuses the request as stale) and the signature verifies
    under the unchanged public key (libsecp256k1 BIP340)."""
    row = await governed.gw.refresh(governed.key_id)
    assert int(row.meta.get("epoch", 0)) == 1
    req, approvals = governed.item()
    (t,) = await governed.g.create([(req, approvals)])
    assert t.status == "signed", (t.status, t.error)
    data = bytes.fromhex(json.loads(req.payload_bytes())["data"])
    SCHEMES["bip340"].verify(data, bytes.fromhex(t.signature), bytes.fromhex(row.public_key))
