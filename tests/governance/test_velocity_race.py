"""The velocity limit holds against the real protocol, not a model of it: real NodeServices with
NodeGovernance (SQLite journals, receipts, snapshots, tombstones) behind two gateways that each
see a different part of the cluster, racing requests whose signer subsets may be disjoint.
Hypothesis picks the amounts, which nodes each gateway cannot reach, and how the requests split."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tholos.cli.governance_cmds import build_request
from tholos.cluster.governance_init import DEMO_USERS, make_genesis
from tholos.gateway.requests import attach
from tholos.gateway.service import Gateway
from tholos.gateway.store import GatewayStore
from tholos.gateway.transport import InMemoryNodeTransport
from tholos.governance import ApprovalRequirement, Policy, Rule, VelocityLimit, approve
from tholos.node import governance as node_gov
from tholos.node.barrier import Barrier
from tholos.node.service import NodeService
from tholos.node.store import NodeStore
from tholos.node.vault import KeyVault
from tholos.transport.e2e import Identity, generate_identity_secret

CLUSTER = "race-cluster"
N, T, CAP = 5, 2, 1_000
LIMIT = VelocityLimit(limit_id="key-hour", scope="key", window_seconds=3600, max_amount=CAP)


async def _race(
    root: Path, down: tuple[set[int], set[int]], amounts: list[tuple[int, int]]
) -> tuple[int, int]:
    """Run the race; (total amount, requests) the nodes' journals hold as signed."""
    secrets = {i: generate_identity_secret() for i in range(1, N + 1)}
    roster = {i: Identity(i, s).public for i, s in secrets.items()}
    keys = {u: Ed25519PrivateKey.generate() for u in DEMO_USERS}
    rule = Rule(
        rule_id="capped",
        approvals=(ApprovalRequirement(group="treasury", count=1),),
        velocity=(LIMIT,),
    )
    genesis = make_genesis(CLUSTER, keys, policy=Policy(rules=(rule,)))
    (root / "genesis.json").write_text(genesis.model_dump_json())
    services = []
    for i, s in secrets.items():
        d = root / f"node-{i}"
        d.mkdir()
        store = NodeStore(d / "node.db")
        svc = NodeService(
            Identity(i, s, dict(roster)), store, KeyVault(store, Barrier(os.urandom(32)), i), 10**5
        )
        settings_ = node_gov.Settings(
            mode="governed",
            cluster_id=CLUSTER,
            genesis=root / "genesis.json",
            genesis_hash=genesis.document.digest(),
            n=N,
            t=T,
        )
        svc.governance = node_gov.NodeGovernance(settings_, d, svc.identity, dict(roster))
        services.append(svc)
    gateways = []
    for g, unreachable in enumerate(down):
        transports = {svc.identity.node_id: InMemoryNodeTransport(svc) for svc in services}
        gw = Gateway(dict(transports), roster, GatewayStore(root / f"gw{g}.db"), T, rpc_timeout=2.0)
        await gw.start()
        gateways.append((gw, transports, unreachable))
    first = gateways[0][0]
    key_id = (await first.create_keys("ed25519"))[0].key_id
    row = first.store.get_key(key_id)
    assert row is not None
    for gw, transports, unreachable in gateways:
        gw.store.put_keys([row])
        for i in unreachable:
            transports[i].down = True
    sides = [attach(gw, None) for gw, _, _ in gateways]

    def item(amount: int) -> tuple[object, list[object]]:
        req = build_request(
            CLUSTER,
            "initiator",
            keys["initiator"],
            key_id=key_id,
            chain="raw",
            asset="RAW",
            destination="addr-1",
            amount=amount,
            data=os.urandom(32),
        )
        return req, [approve(req, "approver-1", keys["approver-1"])]

    await asyncio.gather(*(sides[g].create([item(a)]) for g, a in amounts))  # type: ignore[list-item]
    seen: dict[str, int] = {}  # what any node's journal holds as signed, once per request
    for svc in services:
        for e in svc.governance.journal.entries():  # type: ignore[union-attr]
            if e.status == "signed":
                seen[e.request_id] = e.amount
    signed = sum(seen.values())
    for gw, _, _ in gateways:
        await gw.stop()
    for svc in services:
        svc.governance.close()  # type: ignore[union-attr]
    return signed, len(seen)


unreachable = st.sets(st.integers(1, N), max_size=N - 3)  # each gateway still reaches W = 3 nodes


@pytest.mark.slow
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    down=st.tuples(unreachable, unreachable),
    amounts=st.lists(st.tuples(st.integers(0, 1), st.integers(100, 600)), min_size=3, max_size=8),
)
def test_racing_gateways_never_overspend(
    down: tuple[set[int], set[int]], amounts: list[tuple[int, int]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        total, count = asyncio.run(_race(Path(tmp), down, amounts))
    # Progress is not asserted: two gateways racing may each see the other's reservation and
    # both be refused (safe). Overspending is what must never happen.
    assert total <= CAP, (total, count, down, amounts)
