# ruff: noqa: F811  (the `governed` fixture is imported, then asked for by name)
"""Ethereum nonces the gateway gives against the chain and per batch item, on an in-process
governed cluster over REST: with an Ethereum connector (anvil, revm) transactions sent from the
address outside tholos push the allocated nonce up, and the reply says where the floor came
from; without one the caller's floor stands; an unreachable connector is a 503 with nothing
allocated. In a batch of signing requests, one whose nonce another request holds is refused
alone (409 `nonce_in_use` in its result, never stored) and the others are signed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.engines import running_anvil
from tests.gateway.test_governed_chain_transactions import Governed, governed  # noqa: F401
from tests.gateway.test_outbox_chains import _eth_tx, _request
from tholos.chains.ethereum import Ethereum
from tholos.connectors.ethereum import EthereumRpc
from tholos.gateway import chain_nonces
from tholos.gateway.api import create_app
from tholos.gateway.scheme_protocols import presignatures

pytestmark = pytest.mark.asyncio
OUTSIDE_TO = "0x3535353535353535353535353535353535353535"


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    with running_anvil(31337) as url:
        yield url


@pytest_asyncio.fixture
async def api(governed: Governed) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(lambda: governed.cluster.gateway)
    app.state.gateway = governed.cluster.gateway  # started by the fixture (no lifespan here)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client


async def _eth_wallet(api: httpx.AsyncClient) -> tuple[str, str]:
    r = await api.post("/v1/wallets", json={"chain": "ethereum", "network": "anvil"})
    assert r.status_code == 201, r.text
    return r.json()["wallet_id"], r.json()["address"]


def _send_outside(rpc: EthereumRpc, address: str, count: int) -> None:
    """Transactions from `address` that tholos never signed (anvil impersonates the sender)."""
    rpc.call("anvil_setBalance", address, hex(10**19))
    rpc.call("anvil_impersonateAccount", address)
    for _ in range(count):
        rpc.call("eth_sendTransaction", {"from": address, "to": OUTSIDE_TO, "value": "0x1"})
    rpc.call("anvil_stopImpersonatingAccount", address)


async def _allocate(api: httpx.AsyncClient, wid: str, rid: str, floor: int = 0) -> dict[str, Any]:
    r = await api.post(f"/v1/wallets/{wid}/nonces", json={"request_id": rid, "floor": floor})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_transactions_sent_outside_tholos_push_the_allocated_nonce_up(
    governed: Governed, api: httpx.AsyncClient, anvil_url: str
) -> None:
    rpc = EthereumRpc(anvil_url)
    wid, address = await _eth_wallet(api)
    chain_nonces.attach(governed.cluster.gateway, [anvil_url])
    _send_outside(rpc, address, 3)
    assert rpc.nonce(address) == 3
    first = await _allocate(api, wid, "withdrawal-chain-1")
    assert (first["nonce"], first["floor"], first["floor_from"], first["chain_next"]) == (
        3, 3, "chain", 3,
    )  # fmt: skip
    second = await _allocate(api, wid, "withdrawal-chain-2", floor=2)
    assert (second["nonce"], second["floor_from"]) == (4, "chain")  # 3 is held by the first
    high = await _allocate(api, wid, "withdrawal-chain-3", floor=9)
    assert (high["nonce"], high["floor"], high["floor_from"], high["chain_next"]) == (
        9, 9, "caller", 3,
    )  # fmt: skip
    rpc.call("evm_setAutomine", False)  # in the pool, not mined: "pending" counts it
    try:
        _send_outside(rpc, address, 3)
        assert rpc.nonce(address, pending=False) == 3 and rpc.nonce(address) == 6
        pooled = await _allocate(api, wid, "withdrawal-chain-4")
    finally:
        rpc.call("evm_setAutomine", True)
    assert (pooled["nonce"], pooled["chain_next"]) == (6, 6)
    again = await _allocate(api, wid, "withdrawal-chain-1")  # a request keeps its nonce
    assert again["nonce"] == 3
    held = governed.cluster.gateway.store.nonces.held(31337, address)
    assert [a.nonce for a in held] == [3, 4, 6, 9]


async def test_without_a_connector_the_callers_floor_stands(
    governed: Governed, api: httpx.AsyncClient
) -> None:
    wid, _ = await _eth_wallet(api)
    got = await _allocate(api, wid, "withdrawal-caller-1", floor=7)
    assert (got["nonce"], got["floor"], got["floor_from"], got["chain_next"]) == (
        7, 7, "caller", None,
    )  # fmt: skip
    chain_nonces.attach(governed.cluster.gateway, ["http://127.0.0.1:9/"])  # nobody there
    r = await api.post(f"/v1/wallets/{wid}/nonces", json={"request_id": "withdrawal-caller-2"})
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == "chain_unavailable" and "chain 31337" in err["message"]
    held = governed.cluster.gateway.store.nonces.held(31337, got["address"])
    assert [a.request_id for a in held] == ["withdrawal-caller-1"]  # nothing allocated


async def test_one_nonce_conflict_in_a_batch_refuses_only_its_item(
    governed: Governed, api: httpx.AsyncClient
) -> None:
    wallet = await governed.wallet("ecdsa", "ethereum")
    assert await presignatures(governed.cluster.gateway).presign(wallet.wallet_id, 3) == 3
    address = Ethereum().address(wallet, 0).address
    earlier = _request(governed, wallet, _eth_tx(0, 1), "earlier-withdrawal")
    (t,) = await governed.signing.create([(earlier, governed.approvals(earlier))])
    assert t.status == "signed", t.summary()

    def item(nonce: int, value: int, rid: str) -> dict[str, Any]:
        req = _request(governed, wallet, _eth_tx(nonce, value), rid)
        return {
            "request": req.model_dump(mode="json"),
            "approvals": [a.model_dump(mode="json") for a in governed.approvals(req)],
        }

    batch = [
        item(1, 2, "batch-withdrawal-1"),
        item(0, 3, "batch-withdrawal-clash"),  # nonce 0 is the earlier request's
        item(2, 4, "batch-withdrawal-2"),
        item(2, 5, "batch-withdrawal-twin"),  # the same nonce as the one before it
    ]
    r = await api.post("/v1/signing-requests/batch", json={"requests": batch})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["request_id"] for x in results] == [
        b["request"]["intent"]["request_id"] for b in batch
    ]
    assert [x["status"] for x in results] == ["signed", "refused", "signed", "refused"]
    for refused, holder in ((results[1], "earlier-withdrawal"), (results[3], "batch-withdrawal-2")):
        assert (refused["code"], refused["http_status"], refused["refusals"]) == (
            "nonce_in_use", 409, {},
        )  # fmt: skip
        assert f"held by request {holder}" in refused["error"]
        gone = await api.get(f"/v1/signing-requests/{refused['request_id']}")
        assert gone.status_code == 404, gone.text  # never stored
    assert "code" not in results[0] and results[0]["transaction"]["raw"]
    held = governed.cluster.gateway.store.nonces.held(31337, address)
    assert [(a.request_id, a.nonce, a.state) for a in held] == [
        ("earlier-withdrawal", 0, "signed"),
        ("batch-withdrawal-1", 1, "signed"),
        ("batch-withdrawal-2", 2, "signed"),
    ]
    # One request alone keeps today's answer: the call itself is a 409.
    single = item(1, 6, "single-withdrawal-clash")
    r = await api.post("/v1/signing-requests", json=single)
    assert r.status_code == 409 and r.json()["error"]["code"] == "nonce_in_use", r.text
