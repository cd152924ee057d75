# ruff: noqa: F811  (the `governed` fixture is imported, then asked for by name)
"""REST of the outbox and of Ethereum nonces, on an in-process governed cluster: a signed Solana
transfer is listed and shown (with its raw bytes), filters narrow the list, and bad input (an
unknown state, a malformed hash, a wallet of another chain, a stuck transaction that is not in
the outbox) is a 4xx naming what is wrong, with nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from solders.hash import Hash
from solders.pubkey import Pubkey

from tests.gateway.test_governed_chain_transactions import Governed, governed  # noqa: F401
from tests.gateway.test_outbox_chains import _request
from tholos.chains.solana import system_transfer, unsigned
from tholos.gateway.api import create_app


@pytest_asyncio.fixture
async def api(governed: Governed) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(lambda: governed.cluster.gateway)
    app.state.gateway = governed.cluster.gateway  # started by the fixture (no lifespan here)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client


@pytest.mark.asyncio
async def test_a_signed_transfer_is_listed_and_shown(
    governed: Governed, api: httpx.AsyncClient
) -> None:
    assert (await api.get("/v1/outbox")).json() == {"items": [], "total": 0}
    wallet = await governed.wallet("ed25519", "solana")
    me = Pubkey.from_bytes(wallet.public_key)
    payload = unsigned(me, [system_transfer(me, Pubkey.new_unique(), 10**9)], Hash.new_unique())
    req = _request(governed, wallet, payload)
    (t,) = await governed.signing.create([(req, governed.approvals(req))])
    txid = t.transaction["txid"]
    listed = (await api.get("/v1/outbox")).json()
    assert listed["total"] == 1 and listed["items"][0]["tx_hash"] == txid
    assert "raw" not in listed["items"][0] and listed["items"][0]["state"] == "queued"
    shown = (await api.get(f"/v1/outbox/{txid}")).json()
    assert shown["raw"] == t.transaction["raw"] and shown["request_id"] == req.intent.request_id
    assert (await api.get("/v1/outbox", params={"state": "sent"})).json()["total"] == 0
    rid = req.intent.request_id
    assert (await api.get("/v1/outbox", params={"request_id": rid})).json()["total"] == 1
    assert (await api.get("/v1/outbox", params={"chain": "bitcoin"})).json()["total"] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "params", "status", "words"),
    [
        ("/v1/outbox", {"state": "lost"}, 400, "state"),
        ("/v1/outbox", {"limit": "0"}, 400, "limit"),
        ("/v1/outbox/" + "ab" * 32, {}, 404, "no transaction"),
        ("/v1/outbox/not-a-hash", {}, 400, "tx_hash"),
    ],
)
async def test_bad_outbox_queries_are_refused_naming_what_is_wrong(
    api: httpx.AsyncClient, path: str, params: dict[str, str], status: int, words: str
) -> None:
    r = await api.get(path, params=params)
    assert r.status_code == status, r.text
    assert words in r.text


@pytest.mark.asyncio
async def test_nonces_are_allocated_per_request_over_rest(
    governed: Governed, api: httpx.AsyncClient
) -> None:
    r = await api.post("/v1/wallets", json={"chain": "ethereum", "network": "anvil"})
    assert r.status_code == 201, r.text
    wid = r.json()["wallet_id"]
    url = f"/v1/wallets/{wid}/nonces"
    first = await api.post(url, json={"request_id": "withdrawal-1", "floor": 4})
    assert first.status_code == 201, first.text
    assert (first.json()["nonce"], first.json()["chain_id"]) == (4, "31337")
    second = (await api.post(url, json={"request_id": "withdrawal-2", "floor": 4})).json()
    again = (await api.post(url, json={"request_id": "withdrawal-1", "floor": 4})).json()
    assert (second["nonce"], again["nonce"]) == (5, 4)
    stuck = {"request_id": "fee-bump-1", "replaces": "0x" + "ab" * 32}
    missing = await api.post(url, json=stuck)
    assert missing.status_code == 404 and "replaces" in missing.text
    assert (await api.post(url, json={"request_id": "short"})).status_code == 400
    assert (
        await api.post(url, json={"request_id": "withdrawal-3", "floor": -1})
    ).status_code == 400
    sol = (await api.post("/v1/wallets", json={"chain": "solana", "network": "localnet"})).json()
    other = await api.post(
        f"/v1/wallets/{sol['wallet_id']}/nonces", json={"request_id": "withdrawal-4"}
    )
    assert other.status_code == 409 and "no nonces" in other.text
    unknown = await api.post(f"/v1/wallets/{'0' * 32}/nonces", json={"request_id": "withdrawal-5"})
    assert unknown.status_code == 404
    held = governed.cluster.gateway.store.nonces.held(31337, first.json()["address"])
    assert [a.request_id for a in held] == ["withdrawal-1", "withdrawal-2"]
