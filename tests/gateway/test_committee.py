"""Committee changes on the in-memory cluster (real NodeServices): reshare to another threshold,
remove a holder and add one back, the public key unchanged and the key signing after each step."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import Cluster
from tholos.gateway import committee
from tholos.gateway.errors import GatewayError
from tholos.schemes import SCHEMES

pytestmark = pytest.mark.asyncio


async def _signs(c: Cluster, key_id: str, message: bytes) -> None:
    gw = c.gateway
    job = gw.sign_job(key_id, message)
    await gw.sign([job])
    assert job.signature is not None, job.error
    SCHEMES[job.scheme.name].verify(job.message, job.signature, gw.public_key_for(job))


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
    assert "below this node's minimum" in str(e.value)
    assert gw.key(row.key_id) == row
    await _signs(cluster, row.key_id, b"unchanged")
