"""Reconciliation of a threshold Solana wallet on LiteSVM (the Solana runtime in-process): a
customer's SOL deposit, a SOL withdrawal and an SPL token transfer the governed cluster signed
(FROST-Ed25519) balance to the balances the runtime holds, each tied to its request; the fee
the runtime charged is a line of the SOL report, the token report has the token's movements
only. Planted faults (a transaction with no request, a signed request never sent, lamports
written into the account outside any transaction, a request declaring another amount) are each
listed."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from solders.account import Account
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

from tests.reserves.test_proof_governed import Governed, governed_with
from tholos.chains.base import WalletRef
from tholos.chains.solana import (
    SOLANA,
    TOKEN_PROGRAM,
    system_transfer,
    token_transfer_checked,
    unsigned,
)
from tholos.connectors.solana_litesvm import SolanaLiteSvm
from tholos.governance import Match, Policy, Rule
from tholos.reserves.reconcile import History, Reconciliation, SignedRequest, reconcile
from tholos.reserves.solana_history import history

pytestmark = pytest.mark.slow  # a governed cluster

SOL = 1_000_000_000
OUTSIDER = Pubkey.new_unique()


@pytest_asyncio.fixture
async def governed(tmp_path: Path) -> AsyncIterator[Governed]:
    policy = Policy(rules=(Rule(rule_id="sol", match=Match(chains=("solana",))),))
    async for g in governed_with(tmp_path / "c", policy):
        yield g


def _plain(
    chain: SolanaLiteSvm, payer: Keypair, *ixs: object, signers: tuple[Keypair, ...] = ()
) -> str:
    """A transaction of ordinary keypairs (the customer, the token's admin), through the backend."""
    msg = Message.new_with_blockhash(list(ixs), payer.pubkey(), chain.svm.latest_blockhash())  # type: ignore[arg-type]
    tx = Transaction([payer, *signers], msg, chain.svm.latest_blockhash())
    return chain.broadcast(bytes(tx))


async def _signed(
    g: Governed, chain: SolanaLiteSvm, w: WalletRef, ixs: list[object], asset: str,
    send: bool = True,
) -> tuple[SignedRequest, SignedRequest]:  # fmt: skip
    """The cluster signs the wallet's transaction; its request as the `asset` and SOL reports
    see it."""
    me = Pubkey.from_string(SOLANA.address(w, 0).address)
    raw = unsigned(me, ixs, chain.svm.latest_blockhash())  # type: ignore[arg-type]
    signed = await g.sign(w, raw)
    if send:
        assert chain.broadcast(base64.b64decode(str(signed.transaction["raw"]))) == str(
            signed.transaction["txid"]
        )
    summary = g.signing.get(signed.request_id).summary()
    return SignedRequest.from_summary(summary, asset), SignedRequest.from_summary(summary, "SOL")


def _report(w: WalletRef, asset: str, start: int, end: int, h: History,
            requests: list[SignedRequest]) -> Reconciliation:  # fmt: skip
    return reconcile(
        w.wallet_id, asset, (start, end), (h.opening, h.closing), h.movements, requests
    )


def _mint(chain: SolanaLiteSvm, owner: Pubkey) -> tuple[Keypair, Pubkey, Pubkey]:
    """A token (6 decimals) with associated accounts for `owner` and OUTSIDER."""
    admin, mint = Keypair(), Keypair()
    chain.fund(str(admin.pubkey()), 10 * SOL)
    rent = chain.svm.minimum_balance_for_rent_exemption(82)
    _plain(
        chain, admin,
        create_account(CreateAccountParams(from_pubkey=admin.pubkey(), to_pubkey=mint.pubkey(),
                                           lamports=rent, space=82, owner=TOKEN_PROGRAM)),
        initialize_mint2(InitializeMint2Params(decimals=6, program_id=TOKEN_PROGRAM,
                                               mint=mint.pubkey(), mint_authority=admin.pubkey())),
        create_associated_token_account(admin.pubkey(), owner, mint.pubkey(), TOKEN_PROGRAM),
        create_associated_token_account(admin.pubkey(), OUTSIDER, mint.pubkey(), TOKEN_PROGRAM),
        signers=(mint,),
    )  # fmt: skip
    return admin, mint, get_associated_token_address(owner, mint.pubkey(), TOKEN_PROGRAM)


@pytest.mark.asyncio
async def test_sol_and_token_periods_with_signed_withdrawals_balance(governed: Governed) -> None:
    chain = SolanaLiteSvm()
    w = await governed.wallet("ed25519", "solana", "account")
    address = SOLANA.address(w, 0).address
    me = Pubkey.from_string(address)
    customer = Keypair()
    chain.fund(address, 2 * SOL)
    chain.fund(str(customer.pubkey()), 5 * SOL)
    admin, mint, mine = _mint(chain, me)
    start = chain.height()
    deposit = _plain(chain, customer, system_transfer(customer.pubkey(), me, SOL // 2))
    _, sol_request = await _signed(
        governed, chain, w, [system_transfer(me, OUTSIDER, SOL // 4)], "SOL"
    )
    minted = _plain(chain, admin, mint_to_checked(MintToCheckedParams(
        program_id=TOKEN_PROGRAM, mint=mint.pubkey(), dest=mine, mint_authority=admin.pubkey(),
        amount=1_000_000, decimals=6)))  # fmt: skip
    asset = f"spl:{mint.pubkey()}"
    outsiders = get_associated_token_address(OUTSIDER, mint.pubkey(), TOKEN_PROGRAM)
    token_request, token_fee_request = await _signed(
        governed, chain, w,
        [token_transfer_checked(mine, mint.pubkey(), outsiders, me, 250_000, 6, TOKEN_PROGRAM)],
        asset,
    )  # fmt: skip
    end = chain.height()

    sol = _report(w, "SOL", start, end, history(chain, address, "SOL", start, end),
                  [sol_request, token_fee_request])  # fmt: skip
    assert sol.balances, sol.mismatches
    assert [(ln["kind"], ln["txid"], ln["request_id"]) for ln in sol.lines] == [
        ("deposit", deposit, ""),
        ("fee", sol_request.txid, sol_request.request_id),
        ("withdrawal", sol_request.txid, sol_request.request_id),
        ("fee", token_request.txid, token_request.request_id),
    ]
    assert sol.lines[0]["counterparty"] == str(customer.pubkey())
    assert sol.lines[2]["counterparty"] == str(OUTSIDER) and sol.lines[2]["amount"] == SOL // 4
    assert sol.opening == 2 * SOL and sol.closing == chain.balance(address)
    fees = sol.total("fee")
    assert sol.closing == 2 * SOL + SOL // 2 - SOL // 4 - fees and fees > 0

    tokens = _report(w, asset, start, end, history(chain, address, asset, start, end),
                     [token_request])  # fmt: skip
    assert tokens.balances, tokens.mismatches
    assert [(ln["kind"], ln["txid"], ln["request_id"], ln["amount"]) for ln in tokens.lines] == [
        ("deposit", minted, "", 1_000_000),
        ("withdrawal", token_request.txid, token_request.request_id, 250_000),
    ]
    assert tokens.lines[1]["counterparty"] == str(outsiders)
    assert (tokens.opening, tokens.closing) == (0, 750_000)
    assert tokens.closing == chain.balance(address, f"spl-account:{mine}")
    with pytest.raises(ValueError, match="SOL or spl:<mint>"):
        history(chain, address, "USDC", start, end)


@pytest.mark.asyncio
async def test_planted_faults_are_listed(governed: Governed) -> None:
    chain = SolanaLiteSvm()
    w = await governed.wallet("ed25519", "solana", "account")
    address = SOLANA.address(w, 0).address
    me = Pubkey.from_string(address)
    chain.fund(address, 3 * SOL)
    start = chain.height()
    _, honest = await _signed(
        governed, chain, w, [system_transfer(me, OUTSIDER, SOL // 100)], "SOL"
    )
    _, never_sent = await _signed(
        governed, chain, w, [system_transfer(me, OUTSIDER, SOL // 50)], "SOL", send=False
    )
    _, unshown = await _signed(
        governed, chain, w, [system_transfer(me, OUTSIDER, SOL // 30)], "SOL"
    )
    lying = SignedRequest(honest.request_id, honest.txid, "SOL", SOL // 100 - 1)
    end = chain.height()
    h = history(chain, address, "SOL", start, end)
    r = _report(w, "SOL", start, end, h, [lying, never_sent])
    assert {(m.kind, m.txid, m.request_id) for m in r.mismatches} == {
        ("amount_differs", honest.txid, honest.request_id),
        ("request_not_on_chain", never_sent.txid, never_sent.request_id),
        ("unrequested_movement", unshown.txid, ""),
    }, r.mismatches
    # the balances come from the runtime's records: every transaction seen, nothing unexplained
    assert r.opening + r.total("deposit") - r.total("withdrawal") - r.total("fee") == r.closing
    # lamports written into the account with no transaction: the closing balance is the
    # runtime's, the history has nothing to explain it
    account = chain.svm.get_account(me)
    assert account is not None
    chain.svm.set_account(me, Account(account.lamports + 777, account.data, account.owner,
                                      account.executable, account.rent_epoch))  # fmt: skip
    after = history(chain, address, "SOL", start, chain.height())
    r2 = _report(w, "SOL", start, chain.height(), after, [honest, unshown])
    assert [m.kind for m in r2.mismatches] == ["unexplained_balance"], r2.mismatches
    assert "difference 777" in r2.mismatches[0].detail


@pytest.mark.asyncio
async def test_the_sol_report_over_solana_json_rpc(governed: Governed) -> None:
    """The production path: `SolanaRpc` paging getSignaturesForAddress and reading
    getTransaction, from a node shaped as solana.com documents it (over LiteSVM)."""
    from tests.connectors.solana_rpc_facade import SolanaRpcFacade
    from tholos.connectors.solana_rpc import SolanaRpc
    from tholos.reserves import wallet_history

    node = SolanaRpcFacade()
    w = await governed.wallet("ed25519", "solana", "account")
    address = SOLANA.address(w, 0).address
    me = Pubkey.from_string(address)
    with node.server:
        rpc = SolanaRpc(node.server.url)
        customer = Keypair()  # airdrops name only their recipient here: the customer pays in
        rpc.call("requestAirdrop", str(customer.pubkey()), 5 * SOL)

        def pay(lamports: int) -> str:
            ix = system_transfer(customer.pubkey(), me, lamports)
            msg = Message.new_with_blockhash([ix], customer.pubkey(), node.svm.latest_blockhash())
            return rpc.broadcast(bytes(Transaction([customer], msg, node.svm.latest_blockhash())))

        pay(2 * SOL)
        start = rpc.height()
        deposit = pay(SOL)
        raw = unsigned(me, [system_transfer(me, OUTSIDER, SOL // 10)], node.svm.latest_blockhash())
        signed = await governed.sign(w, raw)
        sent = rpc.broadcast(base64.b64decode(str(signed.transaction["raw"])))
        request = SignedRequest.from_summary(
            governed.signing.get(signed.request_id).summary(), "SOL"
        )
        end = rpc.height()
        node.advance()  # a later slot with nothing in it
        h = wallet_history.read(rpc, "localnet", [address], "SOL", start, end)
        assert h.times is None  # this node answers no getBlockTime: requests are not dated
        r = _report(w, "SOL", start, end, h, [request])
        assert r.balances, r.mismatches
        assert [(ln["kind"], ln["txid"], ln["request_id"]) for ln in r.lines] == [
            ("deposit", deposit, ""),
            ("fee", sent, request.request_id),
            ("withdrawal", sent, request.request_id),
        ]
        assert (r.opening, r.closing) == (2 * SOL, rpc.balance(address))
        # a period before the withdrawal: its closing is what the withdrawal found
        early = wallet_history.read(rpc, "localnet", [address], "SOL", start, start + 1)
        assert (early.opening, early.closing) == (2 * SOL, 3 * SOL)
