"""Committee changes on the in-memory cluster (real NodeServices): reshare to another threshold,
remove a holder and add one back, the public key unchanged and the key signing after each step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.gateway.conftest import Cluster, governed_cluster
from tholos.cluster.governance_init import DEMO_USERS, make_genesis
from tholos.gateway import committee
from tholos.gateway.errors import GatewayError
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SCHEMES
from tholos.transport.refusal import RequestRefused

pytestmark = pytest.mark.asyncio


async def _signs(c: Cluster, key_id: str, message: bytes) -> None:
    gw = c.gateway
    job = gw.sign_job(key_id, message)
    await gw.sign([job])
    assert job.signature is not None, job.error
    SCHEMES[job.row.scheme].verify(job.message, job.signature, gw.public_key_for(job))


async def test_reshare_threshold_remove_and_add_back(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("secp256k1")
    (r1,) = await committee.reshare(gw, [row.key_id], 3)
    assert r1.public_key == row.public_key and r1.package["threshold"] == 3
    assert r1.package != row.package and committee.summary(r1)["epoch"] == 1
    await _signs(cluster, row.key_id, b"t=3")

    (r2,) = await committee.reshare(gw, [row.key_id], 2, [1, 2, 3])
    assert sorted(r2.package["verifying_shares"]) == ["1", "2", "3"]
    assert committee.retiring(r2) == [] and not cluster.services[4].vault.has_key(row.key_id)
    await _signs(cluster, row.key_id, b"without node 4")

    (r3,) = await committee.reshare(gw, [row.key_id], 2, [1, 2, 3, 4])
    assert r3.public_key == row.public_key
    assert cluster.services[4].vault.has_key(row.key_id)
    for i in (1, 2, 3, 4):
        assert cluster.services[i].vault.epoch(cluster.services[i].vault.record(row.key_id)) == 3


async def test_reshare_refuses_bad_plans_and_changes_nothing(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("ecdsa")
    cases = [
        (5, None, "bad_threshold"),
        (0, None, "bad_threshold"),
        (2, [1, 2, 9], "unknown_node"),
        (2, [1, 2], "bad_threshold"),  # ECDSA at t=2 needs 3 signers
    ]
    for t, members, code in cases:
        with pytest.raises(GatewayError) as e:
            await committee.reshare(gw, [row.key_id], t, members)
        assert e.value.code == code, e.value
    assert gw.key(row.key_id) == row


async def test_node_refuses_threshold_below_its_minimum(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("ed25519")
    for s in cluster.services.values():
        s.protocols.min_threshold = 2
    with pytest.raises(GatewayError) as e:
        await committee.reshare(gw, [row.key_id], 1)
    assert (e.value.status, e.value.code) == (422, "reshare_refused")
    assert "below this node's minimum" in str(e.value)
    assert gw.key(row.key_id) == row
    await _signs(cluster, row.key_id, b"unchanged")


def _step(c: Cluster, node: int, phase: str, body: dict[str, Any]) -> Any:
    req = pb.ProtocolRequest(protocol="reshare", phase=phase, payload=json.dumps(body).encode())
    return c.services[node].protocol(req)


async def test_node_refuses_retire_it_was_not_told_at_finish(cluster: Cluster) -> None:
    """A gateway cannot make a holder delete its share with a bare "retire": only a share a
    reshare's finish left out goes."""
    gw = cluster.gateway
    (row,) = await gw.create_keys("bip340")
    with pytest.raises(RequestRefused, match="did not leave this node out"):
        _step(cluster, 1, "retire", {"batch": "b" * 32, "keys": [row.key_id]})
    assert cluster.services[1].vault.has_key(row.key_id)
    await _signs(cluster, row.key_id, b"still signs")


async def test_node_refuses_an_announced_package_it_does_not_hold(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row, other) = await gw.create_keys("ed25519", 2)
    body = {
        "batch": "c" * 32,
        "participants": [1, 2, 3, 4],
        "sessions": [
            {
                "session": row.key_id,
                "scheme": "ed25519",
                "public": other.package,  # the gateway lies about the old package
                "dealers": [1, 2, 3, 4],
                "threshold": 2,
                "members": [1, 2, 3, 4],
            }
        ],
    }
    with pytest.raises(RequestRefused, match="not the one held here"):
        _step(cluster, 1, "round1", body)
    await _signs(cluster, row.key_id, b"unchanged")


async def test_governed_nodes_refuse_committee_changes(tmp_path: Path) -> None:
    users = {name: Ed25519PrivateKey.generate() for name in DEMO_USERS}
    genesis = make_genesis("tholos-committee", users)
    async with governed_cluster(tmp_path, genesis, "tholos-committee") as c:
        (row,) = await c.gateway.create_keys("secp256k1")
        with pytest.raises(GatewayError) as e:
            await committee.reshare(c.gateway, [row.key_id], 3)
        assert "committee change document signed by the admin quorum" in str(e.value)
        assert c.gateway.key(row.key_id) == row
        for s in c.services.values():
            assert s.vault.epoch(s.vault.record(row.key_id)) == 0
