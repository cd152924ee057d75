"""Disable, enable and destroy in a governed cluster: only with a key change signed by the admin
quorum, checked by every node itself (real NodeService + NodeGovernance over the wire transport).

A hostile gateway is played by calling the nodes' RPC directly with what it could forge; restart
is a node reopened from its files (database, governance.db, audit.db)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.gateway.conftest import Cluster, governed_cluster
from tholos.cluster.governance_init import DEMO_USERS, make_genesis
from tholos.gateway import key_lifecycle as life
from tholos.gateway.requests import attach
from tholos.gateway.service import GatewayError
from tholos.governance import approve
from tholos.governance.key_changes import (
    KeyAction,
    KeyChange,
    SignedKeyChange,
    new_key_change,
    sign_key_change,
)
from tholos.governance.request_builder import build_request
from tholos.node.governance import NodeGovernance
from tholos.node.service import NodeService, RequestRefused
from tholos.node.store import NodeStore
from tholos.node.vault import KeyVault, VaultError
from tholos.node.wallets import wallet_resolver
from tholos.rpc import node_pb2 as pb

CLUSTER = "tholos-keylife"
pytestmark = pytest.mark.asyncio


@dataclass
class Gov:
    cluster: Cluster
    users: dict[str, Ed25519PrivateKey]
    tmp: Path

    def change(
        self,
        key_id: str,
        action: KeyAction,
        signers: tuple[str, ...] = ("admin-1", "admin-2"),
        **fields: Any,
    ) -> dict[str, Any]:
        """A key change signed by `signers` (fields override the change before signing)."""
        gov = self.cluster.services[1].governance
        assert gov is not None and gov.state is not None
        base = new_key_change(CLUSTER, gov.state.version, key_id, action, gov._now())
        change = KeyChange.model_validate({**base.model_dump(), **fields})
        sigs = tuple(sign_key_change(change, s, self.users[s]) for s in signers)
        return SignedKeyChange(change=change, signatures=sigs).model_dump(mode="json")

    def audit(self, i: int) -> list[dict[str, Any]]:
        gov = self.cluster.services[i].governance
        assert gov is not None
        return [
            e["payload"]
            for e in map(json.loads, gov.audit.export_lines())
            if e["type"] == "entry" and e["kind"] == "governance"
        ]

    async def signs(self, key_id: str) -> str:
        """The status of a governed signing request on `key_id` (one treasury approval)."""
        req = build_request(
            CLUSTER,
            "initiator",
            self.users["initiator"],
            key_id=key_id,
            chain="raw",
            asset="RAW",
            destination="addr-1",
            amount=5,
            data=b"key lifecycle",
        )
        (t,) = await attach(self.cluster.gateway, None).create(
            [(req, [approve(req, "approver-1", self.users["approver-1"])])]
        )
        return str(t.status)


@pytest_asyncio.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Gov]:
    users = {name: Ed25519PrivateKey.generate() for name in DEMO_USERS}
    async with governed_cluster(tmp_path, make_genesis(CLUSTER, users), CLUSTER) as c:
        yield Gov(c, users, tmp_path)


def rpc(s: NodeService, key_id: str, action: str, change: Any = None) -> pb.ProtocolReply:
    """What a hostile gateway can send a node directly."""
    body: dict[str, Any] = {"key_id": key_id}
    if change is not None:
        body["change"] = change
    req = pb.ProtocolRequest(protocol="key-state", phase=action, payload=json.dumps(body).encode())
    return s.protocol(req)


def unchanged(g: Gov, key_id: str) -> None:
    for s in g.cluster.services.values():
        assert s.vault.has_key(key_id) and not s.vault.is_disabled(key_id)


async def test_the_gateway_alone_cannot_disable_enable_or_destroy(gov: Gov) -> None:
    gw = gov.cluster.gateway
    (row,) = await gw.create_keys("bip340")
    with pytest.raises(GatewayError) as exc:
        await life.set_disabled(gw, row.key_id, True)
    assert exc.value.status == 409 and exc.value.code == "disable_refused"
    assert "admin quorum" in str(exc.value)
    with pytest.raises(GatewayError) as exc:
        await life.destroy(gw, row.key_id, row.key_id)
    assert exc.value.code == "destroy_refused"
    assert gw.key(row.key_id) == row  # the gateway's record is put back as it was
    for s in gov.cluster.services.values():
        for action in ("disable", "enable", "destroy"):
            with pytest.raises(RequestRefused, match="admin quorum"):
                rpc(s, row.key_id, action)
    unchanged(gov, row.key_id)
    assert await gov.signs(row.key_id) == "signed"


@pytest.mark.parametrize(
    "forgery",
    [
        "one admin",
        "not admins",
        "same admin twice",
        "other key",
        "other action",
        "other cluster",
        "stale version",
        "expired",
        "tampered",
        "malformed",
    ],
)
async def test_every_node_refuses_a_change_without_a_valid_quorum(gov: Gov, forgery: str) -> None:
    gw = gov.cluster.gateway
    row, other = await gw.create_keys("ed25519", count=2)
    k = row.key_id
    now = gov.cluster.services[1].governance._now()  # type: ignore[union-attr]
    docs: dict[str, tuple[Any, str]] = {
        "one admin": (gov.change(k, "destroy", ("admin-1",)), "QuorumNotMet"),
        "not admins": (gov.change(k, "destroy", ("approver-1", "risk-1")), "not an admin"),
        "same admin twice": (gov.change(k, "destroy", ("admin-1", "admin-1")), "duplicate"),
        "other key": (gov.change(other.key_id, "destroy"), "names key"),
        "other action": (gov.change(k, "enable"), "not a destroy"),
        "other cluster": (gov.change(k, "destroy", cluster_id="elsewhere"), "cluster"),
        "stale version": (gov.change(k, "destroy", governance_version=7), "version"),
        "expired": (
            gov.change(k, "destroy", issued_at=now - 200_000, expires_at=now - 100_000),
            "expired",
        ),
        "tampered": (_tamper(gov.change(k, "disable"), action="destroy"), "does not verify"),
        "malformed": ({"change": {"key_id": k}, "signatures": []}, "ValidationError"),
    }
    doc, why = docs[forgery]
    for i, s in gov.cluster.services.items():
        with pytest.raises(RequestRefused, match=why):
            rpc(s, k, "destroy", doc)
        assert gov.audit(i)[-1]["event"] == "key_change-refused"
    unchanged(gov, k)
    assert await gov.signs(k) == "signed"


def _tamper(doc: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The admins' signatures over one change, pasted onto another."""
    return {**doc, "change": {**doc["change"], **fields}}


async def test_gateway_refuses_a_document_for_another_key_or_action(gov: Gov) -> None:
    gw = gov.cluster.gateway
    row, other = await gw.create_keys("bip340", count=2)
    for doc in (gov.change(other.key_id, "destroy"), gov.change(row.key_id, "disable")):
        with pytest.raises(GatewayError) as exc:
            await life.destroy(gw, row.key_id, row.key_id, doc)
        assert exc.value.status == 422 and exc.value.code == "key_change_mismatch"
    with pytest.raises(GatewayError) as exc:
        await life.destroy(gw, row.key_id, row.key_id, {"change": {}})
    assert exc.value.code == "invalid_request"
    assert gw.key(row.key_id) == row
    unchanged(gov, row.key_id)


async def test_quorum_destroy_deletes_every_share_durably_audited_and_not_replayable(
    gov: Gov,
) -> None:
    c = gov.cluster
    gw = c.gateway
    row, other = await gw.create_keys("bip340", count=2)
    sealed = {i: s.store.get_key(row.key_id)[2] for i, s in c.services.items()}  # type: ignore[index]
    doc = gov.change(row.key_id, "destroy")
    out = await life.destroy(gw, row.key_id, row.key_id, doc)
    assert out["nodes"] == {"1": True, "2": True, "3": True, "4": True}
    with pytest.raises(GatewayError) as exc:
        gw.key(row.key_id)
    assert exc.value.status == 404
    for i in list(c.services):
        entry = gov.audit(i)[-1]
        assert entry["event"] == "key_destroy" and entry["key_id"] == row.key_id
        assert entry["nonce"] == doc["change"]["nonce"]
        assert entry["signers"] == ["admin-1", "admin-2"] and entry["destroyed"] is True
        s = _restart(gov, i)
        assert not s.vault.has_key(row.key_id)
        with pytest.raises(VaultError, match="unknown key"):
            s.vault.record(row.key_id)
        raw = b"".join(
            p.read_bytes() for p in s.store.path.parent.glob(s.store.path.name + "*") if p.is_file()
        )
        assert sealed[i][12:44] not in raw  # the sealed share is not left in the files
        with pytest.raises(RequestRefused, match="already applied"):
            rpc(s, row.key_id, "destroy", doc)  # the nonce survived the restart too
        assert any(e["event"] == "key_destroy" for e in gov.audit(i))  # the chain survived
    assert await gov.signs(other.key_id) == "signed"


async def test_disable_then_enable_and_a_replayed_disable_is_refused(gov: Gov) -> None:
    gw = gov.cluster.gateway
    (row,) = await gw.create_keys("bip340")
    disable = gov.change(row.key_id, "disable")
    assert (await life.set_disabled(gw, row.key_id, True, disable))["disabled"] is True
    assert all(s.vault.is_disabled(row.key_id) for s in gov.cluster.services.values())
    with pytest.raises(GatewayError) as refused:  # refused when the request is made
        await gov.signs(row.key_id)
    assert refused.value.status == 409 and refused.value.code == "key_disabled"
    enable = gov.change(row.key_id, "enable")
    assert (await life.set_disabled(gw, row.key_id, False, enable))["disabled"] is False
    with pytest.raises(GatewayError) as exc:
        await life.set_disabled(gw, row.key_id, True, disable)
    assert exc.value.status == 409 and exc.value.code == "key_change_replayed"
    assert gw.key(row.key_id).summary()["disabled"] is False
    for s in gov.cluster.services.values():
        with pytest.raises(RequestRefused, match="replay"):
            rpc(s, row.key_id, "disable", disable)
    unchanged(gov, row.key_id)
    assert await gov.signs(row.key_id) == "signed"


async def test_destroy_missed_by_a_node_completes_with_the_same_document(gov: Gov) -> None:
    c = gov.cluster
    (row,) = await c.gateway.create_keys("ed25519")
    doc = gov.change(row.key_id, "destroy")
    c.transports[3].down = True
    with pytest.raises(GatewayError) as exc:
        await life.destroy(c.gateway, row.key_id, row.key_id, doc)
    assert exc.value.code == "destroy_incomplete" and exc.value.extra["done"] == [1, 2, 4]
    assert c.services[3].vault.has_key(row.key_id)
    c.transports[3].down = False
    out = await life.destroy(c.gateway, row.key_id, row.key_id, doc)
    assert out["nodes"] == {"1": False, "2": False, "3": True, "4": False}
    assert not any(s.vault.has_key(row.key_id) for s in c.services.values())


def _restart(gov: Gov, i: int) -> NodeService:
    """Node i closed and opened again from its files (same identity and sealing key)."""
    old = gov.cluster.services[i]
    assert old.governance is not None
    old.governance.close()
    old.store.close()
    store = NodeStore(old.store.path)
    s = NodeService(old.identity, store, KeyVault(store, old.vault._barrier, i), 100_000)
    roster = {j: x.identity.public for j, x in gov.cluster.services.items()}
    s.governance = NodeGovernance(
        old.governance.settings,
        gov.tmp / f"gov-{i}",
        s.identity,
        roster,
        wallets=wallet_resolver(s.vault),
    )
    gov.cluster.services[i] = s
    gov.cluster.transports[i].service = s  # type: ignore[attr-defined]
    return s
