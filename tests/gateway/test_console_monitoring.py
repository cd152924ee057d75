"""The console's monitoring view on an in-memory cluster: a deposit found on LiteSVM appears with
its confirmations and status, the balance per asset is the runtime's, a webhook's delivery log
shows each attempt (a 500, then delivered), the outbox lists a signed transaction; the two
fragments the page polls carry the same rows; without a session the view is the login page; a
gateway without a monitor says so and still shows its outbox."""

from __future__ import annotations

import base64
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

from tests.gateway.conftest import Cluster
from tests.gateway.test_monitoring import Receiver
from tholos.connectors.solana_litesvm import SolanaLiteSvm
from tholos.gateway.api import create_app
from tholos.gateway.console.sessions import Sessions, login_message
from tholos.gateway.console.web import COOKIE
from tholos.gateway.deposit_watch import DepositWatcher
from tholos.gateway.monitoring_api import Monitor, attach, poll_once
from tholos.gateway.outbox import signed_transaction
from tholos.gateway.webhooks import Webhooks
from tholos.governance._keys import public_key_hex, sign

pytestmark = pytest.mark.asyncio


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([500])
    yield r
    r.close()


def _session(c: Cluster) -> str:
    """A console session cookie for `ops` (the login route's own Sessions on the store)."""
    sessions = Sessions(c.gateway.store.db)
    key = Ed25519PrivateKey.generate()
    challenge = sessions.challenge("ops")
    token, _ = sessions.login(
        "cluster",
        "ops",
        bytes.fromhex(public_key_hex(key)),
        challenge.hex(),
        sign(key, login_message("cluster", challenge)),
    )
    return token


def _rows(html: str, cls: str) -> list[list[str]]:
    """The cells' text of every <tr class="cls">."""
    rows = re.findall(rf'<tr class="{cls}"[^>]*>(.*?)</tr>', html, re.S)
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
            for r in rows]  # fmt: skip


def _signed_solana(svm: SolanaLiteSvm) -> tuple[str, str]:
    """A real signed SOL transfer (base64) and its signature, for the outbox."""
    payer = Keypair()
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Pubkey.new_unique(),
                                 lamports=1))  # fmt: skip
    blockhash = Hash.from_string(svm.recent_blockhash())
    tx = Transaction(
        [payer], Message.new_with_blockhash([ix], payer.pubkey(), blockhash), blockhash
    )
    return base64.b64encode(bytes(tx)).decode(), str(tx.signatures[0])


Console = tuple[httpx.AsyncClient, Cluster, Monitor, SolanaLiteSvm]


@pytest_asyncio.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    c = Cluster(tmp_path, 4, 2)
    app = create_app(lambda: c.gateway)
    db = sqlite3.connect(tmp_path / "monitor.db", check_same_thread=False)
    svm = SolanaLiteSvm(confirmations=2)
    hooks = Webhooks(db)
    monitor = Monitor(DepositWatcher(db, {"solana": svm}, hooks), hooks)
    attach(app, monitor)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        client.cookies.set(COOKIE, _session(c))
        yield client, c, monitor, svm
    db.close()


async def _get(client: httpx.AsyncClient, path: str) -> str:
    r = await client.get("/console" + path)
    assert r.status_code == 200, r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    return r.text


async def test_deposits_balances_deliveries_and_outbox_are_shown(
    console: Console, receiver: Receiver
) -> None:
    client, c, monitor, svm = console
    made = await client.post("/v1/wallets", json={"chain": "solana", "network": "localnet",
                                                  "label": "hot"})  # fmt: skip
    assert made.status_code == 201, made.text
    sol = made.json()
    hook = await client.post("/v1/webhooks", json={"url": receiver.url, "events": ["deposit.seen"]})
    assert hook.status_code == 201, hook.text

    html = await _get(client, "/monitoring")
    assert "No deposits seen." in html and "Nothing delivered yet." in html
    assert _rows(html, "balance") == [["hot", "solana (localnet)", "SOL", "0", str(svm.height())]]

    svm.fund(sol["address"], 3 * 10**9)
    poll_once(c.gateway, monitor, 1000.0)  # seen; the receiver answers 500
    live = await _get(client, "/monitoring/live")
    ((txid, to, asset, amount, _, confirmations, status),) = _rows(live, "deposit")
    assert (to, asset, amount, confirmations, status) == (
        sol["address"], "SOL", str(3 * 10**9), "1", "seen"
    )  # fmt: skip
    assert "confirmed after 2 confirmations" in live
    svm.advance()
    poll_once(c.gateway, monitor, 1002.0)  # confirmed (2 slots); the retry is due and delivered
    live = await _get(client, "/monitoring/live")
    (row,) = _rows(live, "deposit")
    assert (row[0], row[5], row[6]) == (txid, "2", "confirmed")
    svm.advance()
    poll_once(c.gateway, monitor, 1003.0)  # a confirmed deposit still counts its depth
    (deeper,) = _rows(await _get(client, "/monitoring/live"), "deposit")
    assert (deeper[5], deeper[6]) == ("3", "confirmed")
    log = _rows(live, "delivery")
    assert [(d[1], d[2], d[4], d[5], d[6]) for d in log] == [
        ("deposit.seen", "2", "200", "", "delivered"),
        ("deposit.seen", "1", "500", "HTTP 500", "delivered"),
    ]
    balances = await _get(client, "/monitoring/balances")
    assert [r[2:4] for r in _rows(balances, "balance")] == [["SOL", str(3 * 10**9)]]

    raw, signature = _signed_solana(svm)
    row = signed_transaction("req-console-1", "solana", "localnet",
                             {"raw": raw, "txid": signature, "encoding": "base64"}, {})  # fmt: skip
    assert row is not None
    c.gateway.store.outbox.add(row)
    html = await _get(client, "/monitoring")
    ((tx_hash, chain, request_id, state, confs, *_),) = _rows(html, "outbox-entry")
    assert (tx_hash, chain, request_id, state, confs) == (
        signature, "solana (localnet)", "req-console-1", "queued", "0"
    )  # fmt: skip
    live = await _get(client, "/monitoring/live")
    assert _rows(html, "deposit") == _rows(live, "deposit")  # the page and its fragment agree
    # keyboard focus survives each refresh: htmx refocuses the element of the same id
    for fragment in (live, await _get(client, "/monitoring/balances")):
        links = re.findall(r"<a\b[^>]*>", fragment)
        ids = [re.search(r'\bid="([^"]+)"', a) for a in links]
        assert links and all(ids), links
        assert len({m.group(1) for m in ids if m}) == len(links), links
    # the polling is declared on both fragments, so the page refreshes itself
    assert 'hx-get="/console/monitoring/live" hx-trigger="every 3s"' in html
    assert 'hx-get="/console/monitoring/balances" hx-trigger="every 15s"' in html


async def test_without_a_session_the_view_is_the_login_page(console: Console) -> None:
    client = console[0]
    client.cookies.clear()
    for path in ("/monitoring", "/monitoring/live", "/monitoring/balances"):
        r = await client.get("/console" + path)
        assert r.status_code == 303 and r.headers["location"] == "/console/login", path
    client.cookies.set(COOKIE, "not-a-session")
    r = await client.get("/console/monitoring/live")
    assert r.status_code == 303


async def test_a_gateway_without_a_monitor_says_so(tmp_path: Path) -> None:
    c = Cluster(tmp_path, 4, 2)
    app = create_app(lambda: c.gateway)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        client.cookies.set(COOKIE, _session(c))
        made = await client.post("/v1/wallets", json={"chain": "solana", "network": "localnet"})
        assert made.status_code == 201, made.text
        html = await _get(client, "/monitoring")
        assert "(409 no_monitor)" in html and 'id="no-monitor"' in html
        assert "This gateway watches no chain" in html
        assert "No signed transactions." in html  # the outbox is still there
        live = await _get(client, "/monitoring/live")
        assert "This gateway watches no chain" in live and _rows(live, "deposit") == []
        assert "(409 no_monitor)" in await _get(client, "/monitoring/balances")
