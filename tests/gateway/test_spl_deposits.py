"""SPL token deposits: a wallet's associated token accounts (Token and Token-2022) credited on the
Solana runtime (LiteSVM) are seen with their amount, mint and confirmations, delivered to a
webhook like SOL deposits, and counted in the wallet's balances per asset; a transfer to
someone else's account is no deposit. Through the production connector (connectors/solana_rpc.py
over the JSON-RPC facade on LiteSVM) and the in-process LiteSVM backend."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.token.associated import get_associated_token_address
from solders.transaction import Transaction
from spl.token.instructions import (
    create_associated_token_account,
    initialize_mint2,
    mint_to_checked,
)
from spl.token.models import InitializeMint2Params, MintToCheckedParams

from tests.connectors.solana_rpc_facade import SolanaRpcFacade
from tests.gateway.conftest import Cluster
from tests.gateway.test_monitoring import Receiver
from tholos.chains.solana import TOKEN_2022_PROGRAM, TOKEN_PROGRAM
from tholos.chains.solana.build import token_transfer_checked
from tholos.connectors.solana_litesvm import SolanaLiteSvm
from tholos.connectors.solana_rpc import SolanaRpc
from tholos.gateway.api import create_app
from tholos.gateway.deposit_watch import DepositWatcher
from tholos.gateway.monitoring_api import Monitor, attach, poll_once
from tholos.gateway.webhooks import Webhooks

pytestmark = pytest.mark.asyncio


@dataclass
class Engine:
    """One way to reach the runtime: its connector, and how the test funds, sends and waits."""

    connector: Any
    fund: Callable[[Pubkey, int], None]
    advance: Callable[[], None]
    recent_blockhash: Callable[[], str]


@pytest.fixture(params=["solana_rpc", "litesvm"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "litesvm":
        svm = SolanaLiteSvm(confirmations=2)
        yield Engine(svm, lambda a, n: svm.fund(str(a), n), svm.advance, svm.recent_blockhash)
        return
    facade = SolanaRpcFacade()
    with facade.server:
        rpc = SolanaRpc(facade.server.url, confirmations=2)
        yield Engine(
            rpc,
            lambda a, n: rpc.call("requestAirdrop", str(a), n),
            facade.advance,
            rpc.recent_blockhash,
        )


Api = tuple[httpx.AsyncClient, Cluster, Monitor]


@pytest_asyncio.fixture
async def api(tmp_path: Path, engine: Engine) -> AsyncIterator[Api]:
    c = Cluster(tmp_path, 4, 2)
    app = create_app(lambda: c.gateway)
    db = sqlite3.connect(tmp_path / "monitor.db", check_same_thread=False)
    hooks = Webhooks(db)
    monitor = Monitor(DepositWatcher(db, {"solana": engine.connector}, hooks), hooks)
    attach(app, monitor)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        yield client, c, monitor
    db.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([])
    yield r
    r.close()


def _send(engine: Engine, payer: Keypair, ixs: Sequence[Instruction], *signers: Keypair) -> str:
    blockhash = Hash.from_string(engine.recent_blockhash())
    msg = Message.new_with_blockhash(list(ixs), payer.pubkey(), blockhash)
    return str(engine.connector.broadcast(bytes(Transaction([payer, *signers], msg, blockhash))))


def _new_mint(admin: Keypair, mint: Keypair, program: Pubkey) -> list[Instruction]:
    return [
        create_account(CreateAccountParams(
            from_pubkey=admin.pubkey(), to_pubkey=mint.pubkey(), lamports=10**7, space=82,
            owner=program)),
        initialize_mint2(InitializeMint2Params(
            decimals=6, program_id=program, mint=mint.pubkey(), mint_authority=admin.pubkey())),
    ]  # fmt: skip


def _mint_to(admin: Keypair, mint: Pubkey, dest: Pubkey, amount: int, program: Pubkey) -> Any:
    return mint_to_checked(MintToCheckedParams(
        program_id=program, mint=mint, dest=dest, mint_authority=admin.pubkey(), amount=amount,
        decimals=6))  # fmt: skip


async def test_spl_deposits_are_seen_confirmed_delivered_and_in_balances(
    api: Api, engine: Engine, receiver: Receiver
) -> None:
    client, c, monitor = api
    made = await client.post("/v1/wallets", json={"chain": "solana", "network": "localnet"})
    assert made.status_code == 201, made.text
    wallet = made.json()
    hook = await client.post(
        "/v1/webhooks", json={"url": receiver.url, "events": ["deposit.seen", "deposit.confirmed"]}
    )
    assert hook.status_code == 201, hook.text
    me, admin, bob = Pubkey.from_string(wallet["address"]), Keypair(), Pubkey.new_unique()
    usdc, points = Keypair(), Keypair()  # a Token mint and a Token-2022 mint
    engine.fund(admin.pubkey(), 10**10)
    poll_once(c.gateway, monitor, 1.0)  # nothing of ours yet: the wallet's scan starts here

    def ata(owner: Pubkey, mint: Keypair, program: Pubkey = TOKEN_PROGRAM) -> Pubkey:
        return get_associated_token_address(owner, mint.pubkey(), program)

    _send(engine, admin, [
        *_new_mint(admin, usdc, TOKEN_PROGRAM),
        create_associated_token_account(admin.pubkey(), admin.pubkey(), usdc.pubkey()),
        create_associated_token_account(admin.pubkey(), me, usdc.pubkey()),
        create_associated_token_account(admin.pubkey(), bob, usdc.pubkey()),
        _mint_to(admin, usdc.pubkey(), ata(admin.pubkey(), usdc), 10**6, TOKEN_PROGRAM),
    ], usdc)  # fmt: skip  # the wallet's account is created empty: no deposit
    sent = _send(engine, admin, [
        token_transfer_checked(ata(admin.pubkey(), usdc), usdc.pubkey(), ata(me, usdc),
                               admin.pubkey(), 250_000, 6)])  # fmt: skip
    _send(engine, admin, [
        token_transfer_checked(ata(admin.pubkey(), usdc), usdc.pubkey(), ata(bob, usdc),
                               admin.pubkey(), 1_000, 6)])  # fmt: skip  # not ours
    minted = _send(engine, admin, [
        *_new_mint(admin, points, TOKEN_2022_PROGRAM),
        create_associated_token_account(admin.pubkey(), me, points.pubkey(), TOKEN_2022_PROGRAM),
        _mint_to(admin, points.pubkey(), ata(me, points, TOKEN_2022_PROGRAM), 7, TOKEN_2022_PROGRAM),
    ], points)  # fmt: skip  # the account did not exist before this transaction
    assert poll_once(c.gateway, monitor, 2.0) == (3, 3)  # 2 seen, the transfer's 2 deep: confirmed

    got = (await client.get(f"/v1/wallets/{wallet['wallet_id']}/deposits")).json()["deposits"]
    assert [(d["txid"], d["asset"], d["amount"], d["confirmations"], d["confirmed"]) for d in got] == [
        (minted, f"spl:{points.pubkey()}", "7", 1, False),
        (sent, f"spl:{usdc.pubkey()}", "250000", 3, True),
    ]  # fmt: skip
    assert {d["address"] for d in got} == {wallet["address"]}
    engine.advance()
    assert poll_once(c.gateway, monitor, 3.0) == (1, 1)
    assert poll_once(c.gateway, monitor, 4.0) == (0, 0)  # nothing twice

    events = sorted(
        (e["type"], e["data"]["mint"], e["data"]["amount"], e["data"]["txid"])
        for e in (json.loads(body) for _, body in receiver.got)
    )
    assert events == sorted([
        ("deposit.seen", str(usdc.pubkey()), "250000", sent),
        ("deposit.confirmed", str(usdc.pubkey()), "250000", sent),
        ("deposit.seen", str(points.pubkey()), "7", minted),
        ("deposit.confirmed", str(points.pubkey()), "7", minted),
    ])  # fmt: skip
    balances = (await client.get(f"/v1/wallets/{wallet['wallet_id']}/balances")).json()
    tokens = sorted([(f"spl:{usdc.pubkey()}", "250000"), (f"spl:{points.pubkey()}", "7")])
    assert balances["balances"] == [{"asset": "SOL", "amount": "0"}] + [
        {"asset": a, "amount": n} for a, n in tokens
    ]
