"""The gateway driving real node logic over an in-memory transport: DKG, signing, failures."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway.conftest import Cluster
from tholos.node.hooks import NO_HOOKS
from tholos.schemes import SCHEMES
from tholos.testing.faults import fault

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("scheme", ["bip340", "ed25519", "secp256k1"])
async def test_dkg_and_sign(cluster: Cluster, scheme: str) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys(scheme)
    assert len(bytes.fromhex(row.public_key)) == SCHEMES[scheme].public_key_length
    jobs = [gw.sign_job(row.key_id, bytes([i]) * 32) for i in range(5)]
    await gw.sign(jobs)
    for j in jobs:
        assert j.signature is not None, j.error
        SCHEMES[scheme].verify(j.message, j.signature, bytes.fromhex(row.public_key))


async def test_corrupt_node_is_excluded(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("secp256k1")
    for s in cluster.services.values():
        s.vault.hooks = fault("corrupt-shares") if s.identity.node_id == 2 else NO_HOOKS
    jobs = [gw.sign_job(row.key_id, b"m" * 32) for _ in range(4)]
    await gw.sign(jobs)
    named = [j for j in jobs if 2 in j.excluded]
    assert named, "node 2 should be named"
    for j in jobs:
        assert j.signature is not None
        assert 2 not in j.signers
        SCHEMES["secp256k1"].verify(j.message, j.signature, bytes.fromhex(row.public_key))


async def test_dead_node(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("ed25519")
    cluster.transports[1].down = True
    cluster.transports[3].down = True
    jobs = [gw.sign_job(row.key_id, b"x") for _ in range(3)]
    await gw.sign(jobs)
    assert all(j.signature for j in jobs)
    cluster.transports[2].down = True
    jobs = [gw.sign_job(row.key_id, b"y")]
    await gw.sign(jobs)
    assert jobs[0].signature is None and jobs[0].status == 503


async def test_derive_and_taproot(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("bip340")
    d = gw.derive(row.key_id, "m/0/1")
    assert d["xpub"].startswith("xpub")
    job = gw.sign_job(row.key_id, b"z" * 32, path="m/0/1", taproot=True)
    await gw.sign([job])
    assert job.signature is not None, job.error
    SCHEMES["bip340"].verify(job.message, job.signature, gw.public_key_for(job))


async def test_refresh_keeps_public_key(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("secp256k1")
    new = await gw.refresh(row.key_id)
    assert new.public_key == row.public_key
    assert new.package != row.package
    job = gw.sign_job(row.key_id, b"after refresh")
    await gw.sign([job])
    assert job.signature is not None, job.error


async def test_dkg_cheating_dealer_is_excluded_by_verifiable_complaint(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node 2 deals node 1 a bad share (and signs it, as a real cheater must to be heard): node 1
    complains with the signed evidence, every node excludes dealer 2, the key is still made."""
    from tholos.crypto.dkg import Round2Package
    from tholos.crypto.secret import SecretScalar
    from tholos.node.protocols import ProtocolRunner

    original = ProtocolRunner._round2

    def cheating_round2(self: ProtocolRunner, state: Any, envelopes: Any) -> Any:
        if self.node_id == 2:
            for sess in state.sessions:
                honest = sess.machine.round2

                def bad(received: Any, honest: Any = honest) -> Any:
                    out = honest(received)
                    p = out[1]
                    out[1] = Round2Package(
                        p.group,
                        p.protocol,
                        p.session,
                        p.sender,
                        p.recipient,
                        SecretScalar((p.share.expose() + 1) % p.group.order),
                    )
                    return out

                sess.machine.round2 = bad
        return original(self, state, envelopes)

    monkeypatch.setattr(ProtocolRunner, "_round2", cheating_round2)
    (row,) = await cluster.gateway.create_keys("secp256k1")
    assert row.meta["dkg_excluded"] == {"2": "bad share for 1"}
    assert row.summary()["dkg_excluded"] == {"2": "bad share for 1"}
    job = cluster.gateway.sign_job(row.key_id, b"after a cheating dealer")
    await cluster.gateway.sign([job])
    assert job.signature is not None, job.error


async def test_nodes_refuse_a_lower_threshold(cluster: Cluster) -> None:
    for s in cluster.services.values():
        s.protocols.min_threshold = 2
    cluster.gateway.threshold = 1  # a compromised gateway asking for 1-of-4 keys
    with pytest.raises(Exception, match="below this node's minimum"):
        await cluster.gateway.create_keys("ed25519")
    assert all(s.store.count_keys() == 0 for s in cluster.services.values())
