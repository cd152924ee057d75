"""The gateway's node bookkeeping: a node that timed out stays out of signing while it answers
health probes (the flaky `test_slow_node_is_skipped`, reproduced deterministically)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway.conftest import Cluster
from tholos.gateway.nodes import NodeSet
from tholos.gateway.transport import NodeUnavailable
from tholos.rpc import node_pb2 as pb

pytestmark = pytest.mark.asyncio


class StallingTransport:
    """Answers `Info` at once but times out on everything else (the node's `--fault slow`)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.node_id = inner.node_id
        self.calls = 0

    async def info(self, timeout: float) -> pb.InfoReply:
        r: pb.InfoReply = await self.inner.info(timeout)
        return r

    def _stall(self) -> NodeUnavailable:
        self.calls += 1
        return NodeUnavailable(self.node_id, "DEADLINE_EXCEEDED: Deadline Exceeded")

    async def commitments(self, req: Any, timeout: float) -> Any:
        raise self._stall()

    async def sign_batch(self, req: Any, timeout: float) -> Any:
        raise self._stall()

    async def protocol(self, req: Any, timeout: float) -> Any:
        raise self._stall()

    async def close(self) -> None:
        return None


async def test_slow_node_stays_skipped_after_health_probes(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("ed25519")
    slow = StallingTransport(cluster.transports[3])
    gw.nodes.nodes[3].transport = slow
    gw.nodes.nodes[3].pools.clear()
    for k in range(8):  # until node 3 is picked and times out
        (job,) = await gw.sign([gw.sign_job(row.key_id, bytes([k]) * 32)])
        assert job.signature is not None and 3 not in job.signers
        if job.excluded:
            assert job.excluded == {3: "timed out"}
            break
    else:
        pytest.fail("node 3 was never picked")
    assert next(n for n in gw.nodes.status() if n["node_id"] == 3)["state"] == "slow"
    calls = slow.calls
    for k in range(12):
        await gw.nodes.probe_all()  # what the health loop does every second: node 3 answers
        (job,) = await gw.sign([gw.sign_job(row.key_id, bytes([100 + k]) * 32)])
        assert job.signature is not None, job.error
        assert job.excluded == {} and 3 not in job.signers
    assert slow.calls == calls, "node 3 was asked again while marked slow"
    assert next(n for n in gw.nodes.status() if n["node_id"] == 3)["state"] == "slow"


async def test_slow_node_is_used_when_no_other_remains(cluster: Cluster) -> None:
    """Slowness is a preference: with too few responsive nodes, slow ones are tried again, and an
    answer in time ends the slow state."""
    gw = cluster.gateway
    (row,) = await gw.create_keys("secp256k1")
    ns: NodeSet = gw.nodes
    for i in (1, 2, 3):
        ns.mark_down(i, "DEADLINE_EXCEEDED: Deadline Exceeded")
        ns.mark_ok(i, probe=True)
    assert ns.responsive([1, 2, 3, 4], 2) == [1, 2, 3, 4]
    assert ns.responsive([1, 2, 3, 4], 1) == [4]
    (job,) = await gw.sign([gw.sign_job(row.key_id, b"m" * 32)])
    assert job.signature is not None and job.excluded == {}
    picked_slow = [s for s in job.signers if s != 4]
    assert picked_slow and all(
        n["state"] == "up" for n in ns.status() if n["node_id"] in picked_slow
    )


async def test_node_is_reported_down_until_it_answers_again(cluster: Cluster) -> None:
    """Health must not count a node as up just because its retry backoff ran out (a node being
    restarted on a loaded machine is not up before it answers)."""
    ns: NodeSet = cluster.gateway.nodes
    cluster.transports[2].down = True
    assert not await ns.probe(2)
    ns.nodes[2].down_until = 0.0  # the backoff has expired
    assert next(n for n in ns.status() if n["node_id"] == 2)["state"] == "down"
    cluster.transports[2].down = False
    assert await ns.probe(2)
    assert next(n for n in ns.status() if n["node_id"] == 2)["state"] == "up"
