"""Share repair and the two-phase refresh commit over real node logic (in-memory transport)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from tests.gateway.conftest import Cluster
from tholos.gateway import repair
from tholos.gateway.service import GatewayError
from tholos.gateway.store import KeyRow
from tholos.gateway.transport import NodeUnavailable
from tholos.node.hooks import NO_HOOKS
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SCHEMES
from tholos.testing.faults import fault

pytestmark = pytest.mark.asyncio


def wipe(cluster: Cluster, node: int) -> None:
    """The node lost its disk: same identity, no key shares, no prepared refreshes."""
    s = cluster.services[node]
    s.store.db.execute("DELETE FROM keys")
    s.store.db.execute("DELETE FROM pending_keys")
    s.vault._cache.clear()


async def sign_with(cluster: Cluster, row: KeyRow, signers: list[int], msg: bytes) -> bytes:
    """Sign with exactly `signers` (the others are quarantined) and verify the signature."""
    gw = cluster.gateway
    for i in gw.nodes.ids:
        st = gw.nodes.nodes[i]
        st.quarantined_until = 0.0
        if i not in signers:
            gw.nodes.quarantine(i, "test: not a chosen signer")
    job = gw.sign_job(row.key_id, msg)
    await gw.sign([job])
    for i in gw.nodes.ids:
        gw.nodes.nodes[i].quarantined_until = 0.0
    assert job.signature is not None, job.error
    assert sorted(job.signers) == sorted(signers)
    SCHEMES[row.scheme].verify(msg, job.signature, bytes.fromhex(row.public_key))
    return job.signature


def crash_at_commit(
    cluster: Cluster, node: int, monkeypatch: pytest.MonkeyPatch, *, stays_down: bool = False
) -> None:
    """Node `node` misses refresh commits (it crashed before them); if `stays_down`, it is
    down from then on (transport.down) until the test brings it back."""
    t = cluster.transports[node]
    real = t.protocol

    async def crash(req: pb.ProtocolRequest, timeout: float) -> pb.ProtocolReply:
        if req.protocol == "refresh" and req.phase == "commit":
            t.down = t.down or stays_down
            raise NodeUnavailable(node, "crashed")
        return await real(req, timeout)

    monkeypatch.setattr(t, "protocol", crash)


def lose_every_commit(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """No node receives a refresh commit (the gateway stops right after its commit point)."""
    for t in cluster.transports.values():
        real = t.protocol

        async def lost(req: pb.ProtocolRequest, timeout: float, real: Any = real) -> Any:
            if req.phase == "commit":
                raise NodeUnavailable(0, "gateway stopped")
            return await real(req, timeout)

        monkeypatch.setattr(t, "protocol", lost)


async def wait_for(cond: Callable[[], object], seconds: float, what: str) -> None:
    for _ in range(int(seconds / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("scheme", ["bip340", "ed25519"])
async def test_repair_after_disk_loss(cluster: Cluster, scheme: str) -> None:
    gw = cluster.gateway
    rows = await gw.create_keys(scheme, count=3)
    wipe(cluster, 3)
    assert not cluster.services[3].vault.has_key(rows[0].key_id)
    # Without its share, node 3 cannot sign; the gateway signs with others.
    job = gw.sign_job(rows[0].key_id, b"m" * 32)
    await gw.sign([job])
    assert job.signature is not None and 3 not in job.signers
    report = await repair.repair_node(gw, 3)
    assert sorted(report["repaired"]) == sorted(r.key_id for r in rows)
    assert report["excluded"] == {}
    for r in rows:
        assert 3 not in report["helpers"][r.key_id] and len(report["helpers"][r.key_id]) == 2
        await sign_with(cluster, r, [3, 4], b"after repair " + r.key_id.encode())
    # The shares are sealed: a fresh vault over the same database opens them.
    s = cluster.services[3]
    s.vault._cache.clear()
    assert s.vault.record(rows[0].key_id).share.identifier == 3


async def test_lying_helper_is_named_and_repair_completes(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("secp256k1")
    wipe(cluster, 1)
    cluster.services[2].vault.hooks = fault("corrupt-repair")
    report = await repair.repair_node(gw, 1, [row.key_id])
    assert "2" in report["excluded"] and "named by node 1" in report["excluded"]["2"]
    assert 2 not in report["helpers"][row.key_id]
    assert gw.nodes.nodes[2].quarantined_until > 0  # named nodes are quarantined
    cluster.services[2].vault.hooks = NO_HOOKS
    await sign_with(cluster, row, [1, 3], b"x" * 32)


async def test_refresh_crash_window_detected_and_committed_later(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node 4 crashes after finishing a refresh and before its commit: the refresh is recorded
    (every node prepared it), node 4 refuses to sign with its old share and reports it, and
    `repair` re-sends the commit, after which node 4 signs with the refreshed share."""
    gw = cluster.gateway
    (row,) = await gw.create_keys("bip340")
    crash_at_commit(cluster, 4, monkeypatch)
    new = await gw.refresh(row.key_id)
    assert new.public_key == row.public_key and new.package != row.package
    assert repair.waiting(new) == [4] and repair.epoch(new) == 1
    assert cluster.services[4].store.count_pending() == 1
    monkeypatch.undo()
    # Node 4 holds the old share: it refuses (stale), the signature is made by others.
    job = gw.sign_job(row.key_id, b"s" * 32)
    gw.nodes.quarantine(1, "test")
    await gw.sign([job])
    assert job.signature is not None and 4 not in job.signers, job.error
    assert "stale share" in job.excluded[4]
    info = cluster.services[4].info(pb.InfoRequest())
    assert list(info.stale_keys) == [row.key_id] and info.pending_refresh == 1
    # A second refresh is refused until node 4 is repaired: nothing changes.
    with pytest.raises(GatewayError) as ei:
        await gw.refresh(row.key_id)
    assert ei.value.code == "refresh_uncommitted"
    report = await repair.repair_node(gw, 4, [row.key_id])
    assert report["committed"] == [row.key_id] and report["repaired"] == []
    assert repair.waiting(gw.key(row.key_id)) == []
    assert "refresh_commit" not in gw.key(row.key_id).meta
    info = cluster.services[4].info(pb.InfoRequest())
    assert list(info.stale_keys) == [] and info.pending_refresh == 0
    await sign_with(cluster, gw.key(row.key_id), [3, 4], b"after commit")
    # Re-sending the commit is acknowledged and changes nothing (idempotent).
    assert await repair._commit_one(gw, new, 4) == ""
    assert cluster.services[4].vault.record(row.key_id).meta["epoch"] == 1


async def test_missed_commit_is_resent_when_the_node_is_back(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node 4 crashes before its commit; once it is up again the gateway's health loop re-sends
    the stored commit by itself (no repair call) and node 4 signs with the refreshed share."""
    gw = cluster.gateway
    gw.recommit_seconds = 0.0
    (row,) = await gw.create_keys("bip340")
    crash_at_commit(cluster, 4, monkeypatch, stays_down=True)
    new = await gw.refresh(row.key_id)
    assert repair.waiting(new) == [4]
    await wait_for(lambda: gw.nodes.usable() == [1, 2, 3], 5, "node 4 seen down")
    await asyncio.sleep(1.5)  # health probes while node 4 is down send it nothing
    assert repair.waiting(gw.key(row.key_id)) == [4]
    assert cluster.services[4].vault.record(row.key_id).meta.get("epoch", 0) == 0
    monkeypatch.undo()
    cluster.transports[4].down = False
    await wait_for(lambda: not repair.waiting(gw.key(row.key_id)), 5, "commit re-sent")
    assert "refresh_commit" not in gw.key(row.key_id).meta
    assert cluster.services[4].vault.record(row.key_id).meta["epoch"] == 1
    assert cluster.services[4].store.count_pending() == 0
    await sign_with(cluster, gw.key(row.key_id), [3, 4], b"committed by itself")
    await sign_with(cluster, gw.key(row.key_id), [1, 4], b"and again")


async def test_late_commit_ack_does_not_undo_a_later_refresh(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An acknowledgement for an older refresh (a background re-send that raced a repair and a
    new refresh) leaves the stored row alone."""
    gw = cluster.gateway
    (row,) = await gw.create_keys("secp256k1")
    crash_at_commit(cluster, 4, monkeypatch, stays_down=True)
    old = await gw.refresh(row.key_id)
    monkeypatch.undo()
    cluster.transports[4].down = False
    await repair.repair_node(gw, 4, [row.key_id])
    lose_every_commit(cluster, monkeypatch)
    second = await gw.refresh(row.key_id)
    assert repair.epoch(second) == 2 and repair.waiting(second) == [1, 2, 3, 4]
    assert repair._confirmed(gw, old, [1, 2, 3, 4]) == second
    assert gw.store.get_key(row.key_id) == second


async def test_refresh_crash_with_lost_preparation_is_repaired(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Node 2 missed the commit and comes back without its prepared share: the re-sent commit
    cannot help, so the gateway names node and key in a warning, the key keeps waiting, and
    repair rebuilds the share."""
    gw = cluster.gateway
    gw.recommit_seconds = 0.0
    (row,) = await gw.create_keys("ed25519")
    crash_at_commit(cluster, 2, monkeypatch, stays_down=True)
    await gw.refresh(row.key_id)
    await wait_for(lambda: 2 not in gw.nodes.usable(), 5, "node 2 seen down")
    monkeypatch.undo()
    cluster.services[2].store.db.execute("DELETE FROM pending_keys")
    cluster.transports[2].down = False
    hint = f"run `tholos keys repair {row.key_id} --node 2`"
    await wait_for(lambda: hint in caplog.text, 5, "warning")
    assert "node 2 has no prepared share" in caplog.text
    assert repair.waiting(gw.key(row.key_id)) == [2]
    report = await repair.repair_node(gw, 2)
    assert report["committed"] == [] and report["repaired"] == [row.key_id]
    assert repair.waiting(gw.key(row.key_id)) == []
    rec = cluster.services[2].vault.record(row.key_id)
    assert rec.meta["epoch"] == 1
    await sign_with(cluster, gw.key(row.key_id), [1, 2], b"repaired after refresh")
    # Refresh works again afterwards, with everyone committing.
    new = await gw.refresh(row.key_id)
    assert repair.waiting(new) == [] and repair.epoch(new) == 2
    await sign_with(cluster, new, [2, 3], b"second refresh")


async def test_stale_helper_is_skipped_not_blamed(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("secp256k1")
    crash_at_commit(cluster, 1, monkeypatch)
    await gw.refresh(row.key_id)  # node 1 stays at epoch 0
    wipe(cluster, 4)
    report = await repair.repair_node(gw, 4, [row.key_id])
    assert 1 not in report["helpers"][row.key_id]
    assert gw.nodes.nodes[1].quarantined_until == 0.0
    await sign_with(cluster, gw.key(row.key_id), [3, 4], b"ok")


# -- bad inputs: clear errors, nothing changed -------------------------------------------------------
def snapshot(cluster: Cluster) -> list[Any]:
    out: list[Any] = [
        json.dumps([r.__dict__ for r in cluster.gateway.store.list_keys()], sort_keys=True)
    ]
    for s in cluster.services.values():
        out.append(s.store.db.execute("SELECT key_id, sealed FROM keys ORDER BY key_id").fetchall())
        out.append(s.store.count_pending())
        out.append(sorted(s.protocols.batches))
    return out


async def test_bad_repair_requests_change_nothing(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("bip340")
    wipe(cluster, 2)
    before = snapshot(cluster)
    cases: list[tuple[int, list[str] | None, int, str]] = [
        (2, ["0" * 32], 404, "unknown_key"),
        (9, [row.key_id], 404, "unknown_node"),
        (0, None, 404, "unknown_node"),
    ]
    for node, keys, status, code in cases:
        with pytest.raises(GatewayError) as ei:
            await repair.repair_node(gw, node, keys)
        assert (ei.value.status, ei.value.code) == (status, code), ei.value
    # A key node 2 does not hold (a 3-holder key in the gateway's records).
    pkg = dict(row.package)
    pkg["verifying_shares"] = {k: v for k, v in pkg["verifying_shares"].items() if k != "2"}
    gw.store.put_keys([replace(row, key_id="f" * 32, package=pkg)])
    with pytest.raises(GatewayError) as ei:
        await repair.repair_node(gw, 2, ["f" * 32])
    assert ei.value.code == "not_a_holder" and "holds no share" in str(ei.value)
    gw.store.db.execute("DELETE FROM keys WHERE key_id = ?", ("f" * 32,))
    gw.store._cache.pop("f" * 32)
    # Too few helpers: two of the three others are out.
    cluster.transports[1].down = True
    gw.nodes.quarantine(3, "test")
    with pytest.raises(GatewayError) as ei:
        await repair.repair_node(gw, 2, [row.key_id])
    assert ei.value.status == 503 and ei.value.code == "too_few_helpers"
    assert "needs 2 helpers" in str(ei.value)
    cluster.transports[1].down = False
    # The node being repaired is unreachable.
    gw.nodes.nodes[3].quarantined_until = 0.0
    cluster.transports[2].down = True
    with pytest.raises(GatewayError) as ei:
        await repair.repair_node(gw, 2, [row.key_id])
    assert ei.value.code == "node_unavailable"
    cluster.transports[2].down = False
    assert snapshot(cluster) == before


async def test_gateway_stopped_before_any_commit_resumes_them(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit point is recorded but no node got its commit (the gateway stopped): at the
    next start the gateway re-sends the stored commits and signing works again."""
    gw = cluster.gateway
    (row,) = await gw.create_keys("secp256k1")
    lose_every_commit(cluster, monkeypatch)
    new = await gw.refresh(row.key_id)
    assert repair.waiting(new) == [1, 2, 3, 4]
    job = gw.sign_job(row.key_id, b"before resume")
    await gw.sign([job])
    assert job.signature is None  # every node still holds epoch 0 and refuses epoch 1
    monkeypatch.undo()
    assert await repair.resume_commits(gw) == 0
    assert repair.waiting(gw.key(row.key_id)) == []
    for i in (1, 2, 3, 4):
        assert cluster.services[i].vault.record(row.key_id).meta["epoch"] == 1
    await sign_with(cluster, gw.key(row.key_id), [1, 4], b"after resume")


@pytest.mark.parametrize("scheme", ["ecdsa", "bls12381", "dise"])
async def test_repair_other_schemes(cluster: Cluster, scheme: str) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys(scheme)
    before = cluster.services[2].vault.record(row.key_id).share
    wipe(cluster, 2)
    report = await repair.repair_node(gw, 2, [row.key_id])
    assert report["repaired"] == [row.key_id]
    after = cluster.services[2].vault.record(row.key_id).share
    g = after.group
    assert g.eq(g.base_mul(after.secret_share.expose()), g.base_mul(before.secret_share.expose()))


async def _refresh_missing_commit_on_4(
    cluster: Cluster, scheme: str, monkeypatch: pytest.MonkeyPatch
) -> KeyRow:
    """A key of `scheme` refreshed while node 4 crashed before its commit (node 4 is stale)."""
    gw = cluster.gateway
    (row,) = await gw.create_keys(scheme)
    crash_at_commit(cluster, 4, monkeypatch)
    await gw.refresh(row.key_id)
    monkeypatch.undo()
    return gw.key(row.key_id)


async def test_stale_node_refuses_bls_and_is_not_blamed(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BLS items carry the epoch: a node that missed a refresh commit refuses as stale (it is
    not quarantined as a liar) and the signature is made by the other holders."""
    from tholos.gateway.scheme_protocols import rounds_for

    gw = cluster.gateway
    row = await _refresh_missing_commit_on_4(cluster, "bls12381", monkeypatch)
    ext = rounds_for(gw)
    for i in (1, 2):
        gw.nodes.quarantine(i, "test: not a chosen signer")
    job = ext.job(row.key_id, b"d" * 32)
    await ext.submit([job])
    assert job.signature is None  # node 3 alone holds the current share among the usable
    assert "stale share" in job.excluded.get(4, ""), job.excluded
    assert gw.nodes.nodes[4].quarantined_until == 0.0  # refused, not blamed
    info = cluster.services[4].info(pb.InfoRequest())
    assert list(info.stale_keys) == [row.key_id]
    for i in gw.nodes.ids:
        gw.nodes.nodes[i].quarantined_until = 0.0
    job = ext.job(row.key_id, b"e" * 32)
    await ext.submit([job])
    assert job.signature is not None and 4 not in job.signers, (job.error, job.excluded)


async def test_ecdsa_presigns_without_the_stale_node(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that missed the commit would make every presign proof fail: the gateway leaves
    it out (nobody is blamed), signs with the others, and refuses when too few remain."""
    from tholos.crypto.ecdsa.signature import EcdsaSignature
    from tholos.crypto.ecdsa.signature import verify as ecdsa_verify
    from tholos.gateway.scheme_protocols import presignatures, rounds_for

    gw = cluster.gateway
    row = await _refresh_missing_commit_on_4(cluster, "ecdsa", monkeypatch)
    ext = rounds_for(gw)
    digest = b"d" * 32
    job = ext.job(row.key_id, digest)
    await ext.submit([job])
    assert job.signature is not None, (job.error, job.excluded)
    assert sorted(job.signers) == [1, 2, 3]
    assert all(st.quarantined_until == 0.0 for st in gw.nodes.nodes.values())
    sig = EcdsaSignature(
        int.from_bytes(job.signature[:32], "big"),
        int.from_bytes(job.signature[32:64], "big"),
        job.recovery_id or 0,
    )
    ecdsa_verify(bytes.fromhex(row.public_key), digest, sig)  # raises if it does not hold
    gw.nodes.quarantine(1, "test")
    presignatures(gw).pools.clear()
    job = ext.job(row.key_id, digest)
    await ext.submit([job])
    assert job.signature is None and "3 are needed" in job.error
