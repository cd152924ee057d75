"""The BIP341 taproot tweak in governed signing: part of the intent, covered by the request digest,
bound by every node to the sign item, applied by the gateway. Real node and gateway code over the
in-memory transport; signatures checked by libsecp256k1 (coincurve), output keys by embit."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from coincurve import PublicKeyXOnly
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from embit import ec
from pydantic import ValidationError

from tests.gateway.conftest import Cluster, governed_cluster
from tholos.cli.governance_cmds import build_request
from tholos.cluster.governance_init import DEMO_USERS, make_genesis
from tholos.gateway.requests import GovernedSigning, attach
from tholos.gateway.service import GatewayError
from tholos.governance import Intent, SigningRequest, approve, request_digest
from tholos.rpc import node_pb2 as pb

CLUSTER = "tholos-taproot"


@dataclass
class Governed:
    cluster: Cluster
    users: dict[str, Ed25519PrivateKey]
    signing: GovernedSigning

    def request(self, key_id: str, path: str = "m", **kw: object) -> SigningRequest:
        return build_request(
            CLUSTER,
            "initiator",
            self.users["initiator"],
            key_id=key_id,
            chain="raw",
            asset="RAW",
            destination="addr-1",
            amount=500,
            data=os.urandom(32),
            path=path,
            **kw,  # type: ignore[arg-type]
        )


@pytest_asyncio.fixture
async def governed(tmp_path: Path) -> AsyncIterator[Governed]:
    """4 nodes (t=2) that each enforce the demo genesis: one treasury approval up to 10,000."""
    users = {name: Ed25519PrivateKey.generate() for name in DEMO_USERS}
    genesis = make_genesis(CLUSTER, users)
    async with governed_cluster(tmp_path, genesis, CLUSTER) as c:
        yield Governed(c, users, attach(c.gateway, None))


def test_the_tweak_is_covered_by_the_digest_and_old_digests_are_unchanged() -> None:
    kw: dict[str, object] = dict(
        request_id="req-00000001",
        initiator="initiator",
        key_id="key-1",
        derivation_path="m/0/7",
        chain="raw",
        asset="RAW",
        destination="addr-1",
        amount=500,
        memo="m",
        created_at=1_700_000_000,
        expires_at=1_700_003_600,
    )
    plain = request_digest("tholos-test", Intent(**kw), b"payload")  # type: ignore[arg-type]
    # Computed with the intent model before it had a tweak: requests without one keep their digest.
    assert plain.hex() == "e7eb89f42e9fbe4a7a827aeac8e718d4993c71c095f939bf7838b57c2d0acc5f"
    digests = {
        request_digest("tholos-test", Intent(**kw, **extra), b"payload")  # type: ignore[arg-type]
        for extra in (
            {},
            {"taproot": True},
            {"taproot": True, "merkle_root": "00" * 32},
            {"taproot": True, "merkle_root": "01" * 32},
        )
    }
    assert len(digests) == 4
    with pytest.raises(ValidationError, match="merkle root needs the taproot tweak"):
        Intent(**kw, merkle_root="00" * 32)  # type: ignore[arg-type]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "merkle_root"), [("m", None), ("m/0/7", bytes(range(32)))], ids=["keypath", "script"]
)
async def test_governed_taproot_request_signs_under_the_output_key(
    governed: Governed, path: str, merkle_root: bytes | None
) -> None:
    gw = governed.cluster.gateway
    (row,) = await gw.create_keys("bip340")
    req = governed.request(
        row.key_id,
        path,
        taproot=True,
        merkle_root=merkle_root.hex() if merkle_root else None,
    )
    approvals = [approve(req, "approver-1", governed.users["approver-1"])]
    (t,) = await governed.signing.create([(req, approvals)])
    assert t.status == "signed", t.summary()
    internal = bytes.fromhex(gw.derive(row.key_id, path)["public_key"])
    output = ec.PublicKey.from_xonly(internal).taproot_tweak(merkle_root or b"").xonly()
    assert t.public_key == output.hex() != internal.hex()
    message = bytes.fromhex(json.loads(req.payload_bytes())["data"])
    assert PublicKeyXOnly(output).verify(bytes.fromhex(t.signature), message)
    assert not PublicKeyXOnly(internal).verify(bytes.fromhex(t.signature), message)


@pytest.mark.asyncio
async def test_taproot_on_a_key_without_it_is_refused_at_the_gateway(governed: Governed) -> None:
    (row,) = await governed.cluster.gateway.create_keys("ed25519")
    req = governed.request(row.key_id, taproot=True)
    with pytest.raises(GatewayError, match="'taproot_tweak' does not apply to ed25519"):
        await governed.signing.create([(req, [])])


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("intent", "item"),
    [
        ({"taproot": True}, {}),
        ({}, {"taproot": True}),
        ({"taproot": True}, {"taproot": True, "merkle_root": b"\x01" * 32}),
        ({"taproot": True, "merkle_root": "01" * 32}, {"taproot": True}),
        (
            {"taproot": True, "merkle_root": "01" * 32},
            {"taproot": True, "merkle_root": b"\x02" * 32},
        ),
    ],
)
async def test_a_sign_item_whose_tweak_differs_from_the_intent_is_refused(
    governed: Governed, intent: dict[str, object], item: dict[str, object]
) -> None:
    """What a compromised gateway could try: an approved request, signed under another key."""
    (row,) = await governed.cluster.gateway.create_keys("bip340")
    req = governed.request(row.key_id, **intent)
    approvals = [approve(req, "approver-1", governed.users["approver-1"]).model_dump(mode="json")]
    blob = {"request": req.model_dump(mode="json"), "approvals": approvals}
    message = bytes.fromhex(json.loads(req.payload_bytes())["data"])
    sign_item = pb.SignItem(
        request_id=req.intent.request_id,
        key_id=row.key_id,
        message=message,
        governance=json.dumps(blob).encode(),
        **item,  # type: ignore[arg-type]
    )
    for node in governed.cluster.services.values():
        (res,) = node.sign_batch(pb.SignBatchRequest(items=[sign_item])).results
        assert not res.share
        assert res.error == "PolicyRefused[binding]: taproot tweak differs from the intent"
