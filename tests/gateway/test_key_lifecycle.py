"""Key lifecycle over real node logic: disable/enable (node-side state), label, tags, destroy."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.gateway.conftest import Cluster
from tests.gateway.test_repair import sign_with
from tholos.gateway import key_lifecycle as life
from tholos.gateway.scheme_protocols import presignatures, rounds_for
from tholos.gateway.service import GatewayError

pytestmark = pytest.mark.asyncio


async def test_disabled_key_is_refused_by_gateway_and_by_every_node(cluster: Cluster) -> None:
    gw = cluster.gateway
    row, other = await gw.create_keys("bip340", count=2)
    out = await life.set_disabled(gw, row.key_id, True)
    assert out["disabled"] is True
    assert all(s.vault.is_disabled(row.key_id) for s in cluster.services.values())
    with pytest.raises(GatewayError) as exc:
        gw.sign_job(row.key_id, b"m" * 32)
    assert exc.value.status == 409 and exc.value.code == "key_disabled"
    # A gateway that forgets (or lies about) the disabled flag: every node still refuses.
    gw.store.put_keys([replace(gw.key(row.key_id), meta={})])
    job = gw.sign_job(row.key_id, b"m" * 32)
    await gw.sign([job])
    assert job.signature is None and "disabled" in job.error, job.error
    await sign_with(cluster, other, [1, 2], b"other keys are unaffected")
    await life.set_disabled(gw, row.key_id, True)
    assert (await life.set_disabled(gw, row.key_id, False))["disabled"] is False
    assert not any(s.vault.is_disabled(row.key_id) for s in cluster.services.values())
    await sign_with(cluster, row, [3, 4], b"enabled again")


async def test_disable_needs_every_node_and_keeps_the_safe_side(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("ed25519")
    cluster.transports[4].down = True
    with pytest.raises(GatewayError) as exc:
        await life.set_disabled(gw, row.key_id, True)
    assert exc.value.status == 503 and "node 4 unavailable" in str(exc.value)
    assert gw.key(row.key_id).summary()["disabled"] is True  # refused here meanwhile
    cluster.transports[4].down = False
    await life.set_disabled(gw, row.key_id, True)
    assert cluster.services[4].vault.is_disabled(row.key_id)


async def test_disable_bls_key_refused_on_nodes(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("bls12381")
    await life.set_disabled(gw, row.key_id, True)
    for s in cluster.services.values():
        with pytest.raises(Exception, match="disabled"):
            s.vault.check_enabled(row.key_id)


async def test_label_and_tags(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("bip340", label="old")
    assert life.relabel(gw, row.key_id, "treasury hot")["label"] == "treasury hot"
    assert life.retag(gw, row.key_id, ["env:prod", "team/a"], [])["tags"] == ["env:prod", "team/a"]
    assert life.retag(gw, row.key_id, ["x"], ["team/a"])["tags"] == ["env:prod", "x"]
    before = gw.key(row.key_id)
    for bad in (["has space"], [""], ["a" * 65]):
        with pytest.raises(GatewayError) as exc:
            life.retag(gw, row.key_id, bad, [])
        assert exc.value.code == "bad_tag"
    with pytest.raises(GatewayError) as exc:
        life.retag(gw, row.key_id, [f"t{i}" for i in range(40)], [])
    assert exc.value.code == "too_many_tags"
    assert gw.key(row.key_id) == before  # nothing changed
    assert life.relabel(gw, row.key_id, None)["label"] is None


async def test_destroy_deletes_every_share_durably(cluster: Cluster) -> None:
    gw = cluster.gateway
    row, other = await gw.create_keys("bip340", count=2)
    sealed = {
        i: s.store.get_key(row.key_id)[2]  # type: ignore[index]
        for i, s in cluster.services.items()
    }
    with pytest.raises(GatewayError) as exc:
        await life.destroy(gw, row.key_id, other.key_id)
    assert exc.value.code == "confirm_mismatch"
    assert all(s.vault.has_key(row.key_id) for s in cluster.services.values())
    out = await life.destroy(gw, row.key_id, row.key_id)
    assert out["nodes"] == {"1": True, "2": True, "3": True, "4": True}
    with pytest.raises(GatewayError) as exc:
        gw.key(row.key_id)
    assert exc.value.status == 404
    for i, s in cluster.services.items():
        assert not s.vault.has_key(row.key_id)
        raw = b"".join(
            p.read_bytes() for p in s.store.path.parent.glob(s.store.path.name + "*") if p.is_file()
        )
        assert sealed[i][12:44] not in raw  # the sealed share is not left in the files
    await sign_with(cluster, other, [1, 4], b"the other key still signs")


async def test_destroy_with_a_node_down_is_incomplete_then_idempotent(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("ed25519")
    cluster.transports[2].down = True
    with pytest.raises(GatewayError) as exc:
        await life.destroy(gw, row.key_id, row.key_id)
    assert exc.value.code == "destroy_incomplete" and exc.value.extra["done"] == [1, 3, 4]
    assert cluster.services[2].vault.has_key(row.key_id)
    cluster.transports[2].down = False
    out = await life.destroy(gw, row.key_id, row.key_id)
    assert out["nodes"] == {"1": False, "2": True, "3": False, "4": False}
    assert not cluster.services[2].vault.has_key(row.key_id)


async def test_disabled_round_key_and_dise_sign_hint(cluster: Cluster) -> None:
    """ECDSA/BLS/DiSE jobs check the disabled flag too; a DiSE key asked to sign names the
    commands that exist (`tholos encrypt`/`decrypt`), not a command that does not."""
    gw = cluster.gateway
    bls, dise = (await gw.create_keys("bls12381"))[0], (await gw.create_keys("dise"))[0]
    rounds = rounds_for(gw)
    with pytest.raises(GatewayError) as exc:
        rounds.job(dise.key_id, b"m" * 32)
    assert "tholos encrypt" in str(exc.value) and "use evaluate" not in str(exc.value)
    await life.set_disabled(gw, bls.key_id, True)
    with pytest.raises(GatewayError) as exc:
        rounds.job(bls.key_id, b"m" * 32)
    assert exc.value.code == "key_disabled"


async def test_destroy_ecdsa_key_deletes_its_presignatures(cluster: Cluster) -> None:
    gw = cluster.gateway
    (row,) = await gw.create_keys("ecdsa")
    await presignatures(gw).presign(row.key_id, 4)
    db = cluster.services[1].store.db
    count = "SELECT COUNT(*) FROM presigs WHERE key_id = ?"
    assert db.execute(count, (row.key_id,)).fetchone()[0] > 0
    await life.destroy(gw, row.key_id, row.key_id)
    for s in cluster.services.values():
        assert s.store.db.execute(count, (row.key_id,)).fetchone()[0] == 0
