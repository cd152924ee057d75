"""Deposit monitoring and webhooks on an in-memory cluster's REST API: deposits to wallet
addresses found on real engines (LiteSVM, Bitcoin Core's consensus code via py-bitcoinkernel)
with their confirmations, balances per wallet, and events delivered to a local HTTP receiver,
signed (checked with libsodium under the key the API publishes), retried after a failure, every
attempt in the delivery log. Bad input is a 4xx in the envelope."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from nacl.signing import VerifyKey

from tests.gateway.conftest import Cluster
from tholos.connectors.bitcoin_regtest import BitcoinRegtest
from tholos.connectors.solana_litesvm import SolanaLiteSvm
from tholos.gateway.api import create_app
from tholos.gateway.deposit_watch import DepositWatcher
from tholos.gateway.monitoring_api import Monitor, attach, poll_once
from tholos.gateway.webhooks import MAX_ATTEMPTS, Webhooks

pytestmark = pytest.mark.asyncio


class Receiver:
    """A webhook endpoint on 127.0.0.1 answering the statuses in `answers` in turn (then 200)."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = answers
        self.got: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.answers.pop(0) if outer.answers else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([500])
    yield r
    r.close()


Api = tuple[httpx.AsyncClient, Cluster, Monitor, dict[str, Any]]


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    c = Cluster(tmp_path, 4, 2)
    app = create_app(lambda: c.gateway)
    db = sqlite3.connect(tmp_path / "monitor.db", check_same_thread=False)
    engines: dict[str, Any] = {
        "solana": SolanaLiteSvm(confirmations=2),
        "bitcoin": BitcoinRegtest(tmp_path / "regtest", confirmations=3),
    }
    hooks = Webhooks(db)
    monitor = Monitor(DepositWatcher(db, engines, hooks, addresses_per_wallet=3), hooks)
    attach(app, monitor)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        yield client, c, monitor, engines
    db.close()


async def _ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def _err(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code, resp.text


async def test_deposits_are_seen_confirmed_and_delivered_signed_with_retries(
    api: Api, receiver: Receiver
) -> None:
    client, c, monitor, engines = api
    sol = await _ok(
        await client.post("/v1/wallets", json={"chain": "solana", "network": "localnet"}), 201
    )
    btc = await _ok(
        await client.post("/v1/wallets", json={"chain": "bitcoin", "network": "regtest"}), 201
    )
    hook = await _ok(
        await client.post(
            "/v1/webhooks",
            json={"url": receiver.url, "events": ["deposit.seen", "deposit.confirmed"]},
        ),
        201,
    )
    key = VerifyKey(bytes.fromhex((await _ok(await client.get("/v1/webhooks/key")))["public_key"]))

    engines["solana"].fund(sol["address"], 3 * 10**9)
    second = (await _ok(await client.get(f"/v1/wallets/{btc['wallet_id']}/addresses/2")))["address"]
    engines["bitcoin"].mine(1, second)  # a coinbase to m/0/2
    assert poll_once(c.gateway, monitor, 1000.0) == (2, 1)  # 2 seen; the first POST got a 500
    deposits = (await _ok(await client.get(f"/v1/wallets/{sol['wallet_id']}/deposits")))["deposits"]
    assert [(d["amount"], d["confirmations"], d["confirmed"]) for d in deposits] == [
        (str(3 * 10**9), 1, False)
    ]
    (b,) = (await _ok(await client.get(f"/v1/wallets/{btc['wallet_id']}/deposits")))["deposits"]
    assert b["address"] == second and b["block"] == 1 and b["amount"] == str(50 * 10**8)

    engines["solana"].advance()
    engines["bitcoin"].mine(2)
    assert poll_once(c.gateway, monitor, 1001.0) == (2, 2)  # both confirmed; the retry not due
    assert poll_once(c.gateway, monitor, 1002.0) == (0, 1)  # the retry of the 500, after 2 s
    assert poll_once(c.gateway, monitor, 1100.0) == (0, 0)  # nothing twice

    events = []
    for headers, body in receiver.got:
        stamp = headers["x-tholos-timestamp"].encode()
        signature = bytes.fromhex(headers["x-tholos-signature"].removeprefix("ed25519="))
        key.verify(stamp + b"." + body, signature)  # raises if forged
        event = json.loads(body)
        assert (
            event["id"] == headers["x-tholos-event-id"]
            and event["type"] == headers["x-tholos-event"]
        )
        events.append((event["type"], event["data"]["chain"]))
    assert len(receiver.got) == 5  # 4 events, the first one twice
    assert sorted(set(events)) == [
        ("deposit.confirmed", "bitcoin"), ("deposit.confirmed", "solana"),
        ("deposit.seen", "bitcoin"), ("deposit.seen", "solana"),
    ]  # fmt: skip
    log = (await _ok(await client.get(f"/v1/webhooks/{hook['webhook_id']}/deliveries")))[
        "deliveries"
    ]
    assert len(log) == 5 and sorted(d["http_status"] for d in log) == [200, 200, 200, 200, 500]
    failed = [d for d in log if d["http_status"] == 500]
    assert failed[0]["error"] == "HTTP 500" and failed[0]["delivery"] == "delivered"

    balances = await _ok(await client.get(f"/v1/wallets/{btc['wallet_id']}/balances"))
    assert balances["balances"] == [{"asset": "BTC", "amount": "0"}]  # the coinbase is immature
    engines["bitcoin"].mine(100)
    balances = await _ok(await client.get(f"/v1/wallets/{btc['wallet_id']}/balances"))
    assert balances["balances"] == [{"asset": "BTC", "amount": str(50 * 10**8)}]
    assert balances["addresses"] == {second: str(50 * 10**8)} and balances["height"] == 103
    sol_bal = await _ok(await client.get(f"/v1/wallets/{sol['wallet_id']}/balances"))
    assert sol_bal["balances"] == [{"asset": "SOL", "amount": str(3 * 10**9)}]


async def test_an_unreachable_receiver_is_retried_with_backoff_then_failed(
    api: Api, tmp_path: Path
) -> None:
    client, c, monitor, engines = api
    sol = await _ok(
        await client.post("/v1/wallets", json={"chain": "solana", "network": "localnet"}), 201
    )
    hook = await _ok(
        await client.post(
            "/v1/webhooks", json={"url": "http://127.0.0.1:9/none", "events": ["deposit.seen"]}
        ),
        201,
    )
    engines["solana"].fund(sol["address"], 10**9)
    now = 0.0
    poll_once(c.gateway, monitor, now)
    attempts_at = [now]
    for attempt in range(1, MAX_ATTEMPTS):
        now += 2.0**attempt
        assert poll_once(c.gateway, monitor, now - 0.5)[1] == 0  # not due before its backoff
        poll_once(c.gateway, monitor, now)
        attempts_at.append(now)
    log = (await _ok(await client.get(f"/v1/webhooks/{hook['webhook_id']}/deliveries")))[
        "deliveries"
    ]
    assert sorted(d["at"] for d in log) == attempts_at
    assert all(d["http_status"] is None and d["error"] for d in log)
    assert {d["delivery"] for d in log} == {"failed"}
    assert poll_once(c.gateway, monitor, now + 10**6) == (0, 0)  # failed: no more attempts


async def test_bad_input_is_refused_and_nothing_stored(api: Api) -> None:
    client, _, monitor, _ = api
    for body in (
        {"url": "ftp://x/y", "events": ["deposit.seen"]},
        {"url": "http://127.0.0.1/x", "events": ["withdrawal.made"]},
        {"url": "http://127.0.0.1/x", "events": []},
        {"url": "http://127.0.0.1/x"},
        {"url": "http://127.0.0.1/x", "events": ["deposit.seen"], "secret": "s"},
    ):
        r = await client.post("/v1/webhooks", json=body)
        assert r.status_code in (400, 422), r.text
        assert "error" in r.json(), r.text
    assert monitor.webhooks.subscriptions() == []
    _err(await client.get("/v1/webhooks/" + "0" * 32 + "/deliveries"), 404, "unknown_webhook")
    _err(await client.delete("/v1/webhooks/" + "0" * 32), 404, "unknown_webhook")
    _err(await client.get("/v1/wallets/" + "0" * 32 + "/balances"), 404, "unknown_wallet")


async def test_a_gateway_without_connectors_says_so(tmp_path: Path) -> None:
    c = Cluster(tmp_path, 4, 2)
    app = create_app(lambda: c.gateway)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        _err(await client.get("/v1/webhooks"), 409, "no_monitor")
