"""A share sealed at rest that no longer opens (blobs swapped or corrupted on disk): the node
reports it, the gateway leaves that node out of that key only (no blame), repair rebuilds it."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import Cluster
from tests.gateway.test_repair import sign_with
from tholos.gateway import repair

pytestmark = pytest.mark.asyncio


def swap_sealed(cluster: Cluster, node: int, a: str, b: str) -> None:
    """Swap the sealed share blobs of keys `a` and `b` in the node's database (an attacker or a
    corrupted disk); the node forgets what it had opened, as after a restart."""
    db = cluster.services[node].store.db
    blobs = dict(db.execute("SELECT key_id, sealed FROM keys WHERE key_id IN (?, ?)", (a, b)))
    with db:
        db.execute("UPDATE keys SET sealed = ? WHERE key_id = ?", (blobs[b], a))
        db.execute("UPDATE keys SET sealed = ? WHERE key_id = ?", (blobs[a], b))
    cluster.services[node].vault._cache.clear()


@pytest.mark.parametrize("scheme", ["bip340", "ed25519"])
async def test_broken_share_is_reported_left_out_and_repaired(
    cluster: Cluster, scheme: str
) -> None:
    gw = cluster.gateway
    a, b, c = await gw.create_keys(scheme, count=3)
    swap_sealed(cluster, 1, a.key_id, b.key_id)
    vault = cluster.services[1].vault
    assert vault.scan() == {a.key_id, b.key_id}
    assert await gw.nodes.probe(1)
    shares = repair.share_health(gw)["1"]
    assert shares["broken_keys"] == sorted([a.key_id, b.key_id]), shares
    # Node 1 is left out of the broken keys, named as such, and not quarantined.
    job = gw.sign_job(a.key_id, b"m" * 32)
    await gw.sign([job])
    assert job.signature is not None and 1 not in job.signers
    assert "broken share" in job.excluded[1], job.excluded
    assert [n["state"] for n in gw.nodes.status()] == ["up"] * 4
    await sign_with(cluster, c, [1, 2], b"an intact key of node 1")
    # Repair rebuilds the broken share of one key; the other stays broken until repaired.
    report = await repair.repair_node(gw, 1, [a.key_id])
    assert report["repaired"] == [a.key_id], report
    assert report["excluded"] == {}, report
    assert repair.share_health(gw)["1"]["broken_keys"] == [b.key_id]
    await sign_with(cluster, a, [1, 2], b"after repair")
    report = await repair.repair_node(gw, 1)
    assert sorted(report["repaired"]) == sorted(r.key_id for r in (a, b, c)), report
    assert repair.share_health(gw)["1"]["broken_keys"] == []
    vault._cache.clear()
    assert vault.scan() == set()
    await sign_with(cluster, b, [1, 3], b"both repaired")


async def test_broken_helper_is_skipped_not_blamed(cluster: Cluster) -> None:
    gw = cluster.gateway
    a, b = await gw.create_keys("bip340", count=2)
    swap_sealed(cluster, 1, a.key_id, b.key_id)
    cluster.services[1].vault.scan()
    await gw.nodes.probe(1)
    report = await repair.repair_node(gw, 4, [a.key_id])
    assert report["repaired"] == [a.key_id]
    assert 1 not in report["helpers"][a.key_id]
    assert [n["state"] for n in gw.nodes.status()] == ["up"] * 4


async def test_broken_share_found_by_a_request_without_a_scan(cluster: Cluster) -> None:
    """No scan (the blobs changed while the node ran): the sign request itself finds it."""
    gw = cluster.gateway
    a, b = await gw.create_keys("bip340", count=2)
    swap_sealed(cluster, 1, a.key_id, b.key_id)
    await sign_with(cluster, a, [2, 3], b"warm-up")  # node 1 not asked
    for i in gw.nodes.ids:
        gw.nodes.nodes[i].quarantined_until = 0.0
    gw.nodes.quarantine(3, "test")
    gw.nodes.quarantine(4, "test")
    job = gw.sign_job(a.key_id, b"x" * 32)
    await gw.sign([job])
    assert "broken share" in job.excluded.get(1, ""), job.excluded
    assert cluster.services[1].vault.broken == {a.key_id}
    assert await gw.nodes.probe(1)
    assert repair.share_health(gw)["1"]["broken_keys"] == [a.key_id]


async def test_background_scan_finds_broken_shares_and_keeps_none_open(cluster: Cluster) -> None:
    """The start-up scan runs beside requests, reports how many shares it has left (Info), and
    does not keep the shares it opened (a node with 100,000 keys would hold them all)."""
    from tholos.rpc import node_pb2 as pb

    gw = cluster.gateway
    a, b, c = await gw.create_keys("bip340", count=3)
    swap_sealed(cluster, 1, a.key_id, b.key_id)
    service = cluster.services[1]
    found: list[set[str]] = []
    service.vault.scan_in_background(found.append).join(60)
    assert found == [{a.key_id, b.key_id}]
    assert len(service.vault._cache) == 0
    info = service.info(pb.InfoRequest())
    assert info.shares_unchecked == 0
    assert sorted(info.broken_keys) == sorted([a.key_id, b.key_id])
    await sign_with(cluster, c, [1, 2], b"opened on first use")
