"""The Solana JSON-RPC connector against a Solana RPC-shaped facade over LiteSVM (no
solana-test-validator here; acceptance and balances are the Solana runtime's): a transfer is
broadcast with preflight, pending then confirmed as slots pass (finalized later), sent again
without error, seen as a deposit (also across pages of signatures); SPL balances by owner and
mint and by token account, after a mint set up through the connector; a refused transaction keeps
the runtime's error and is not retryable; transport failures and an unhealthy node are."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

from tests.connectors.rpc_facade import RpcFault, RpcServer
from tests.connectors.solana_rpc_facade import FINALITY_SLOTS, SolanaRpcFacade
from tholos.connectors import solana_rpc
from tholos.connectors.base import Connector, ConnectorError
from tholos.connectors.solana_rpc import SolanaRpc


@pytest.fixture()
def node() -> Iterator[SolanaRpcFacade]:
    facade = SolanaRpcFacade()
    with facade.server:
        yield facade


def _transfer(rpc: SolanaRpc, payer: Keypair, to: Pubkey, lamports: int) -> bytes:
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports))
    blockhash = Hash.from_string(rpc.recent_blockhash())
    msg = Message.new_with_blockhash([ix], payer.pubkey(), blockhash)
    return bytes(Transaction([payer], msg, blockhash))


def test_transfer_confirm_finalize_deposit(node: SolanaRpcFacade) -> None:
    rpc = SolanaRpc(node.server.url, confirmations=2)
    assert isinstance(rpc, Connector)
    assert rpc.network() == "localnet"
    payer, to = Keypair(), Pubkey.new_unique()
    before_funding = rpc.height()
    airdrop = rpc.call("requestAirdrop", str(payer.pubkey()), 10**9)
    assert rpc.balance(str(payer.pubkey())) == 10**9
    start = rpc.height()
    raw = _transfer(rpc, payer, to, 5_000_000)
    txid = rpc.broadcast(raw)
    assert rpc.broadcast(raw) == txid  # LiteSVM answers AlreadyProcessed; taken as sent
    assert rpc.balance(str(to)) == 5_000_000
    assert rpc.balance(str(payer.pubkey())) == 10**9 - 5_000_000 - 5_000  # runtime's fee
    first = rpc.status(txid)
    assert (first.state, first.confirmations, first.block) == ("pending", 1, start + 1)
    node.advance()
    status = rpc.status(txid)
    assert (status.state, status.confirmations) == ("confirmed", 2)
    strict = SolanaRpc(node.server.url, confirmations=10**6)
    assert strict.status(txid).state == "pending"
    node.advance(FINALITY_SLOTS)
    assert strict.status(txid).state == "confirmed"  # finalized
    (deposit,) = rpc.deposits([str(to)], since=start)
    assert (deposit.txid, deposit.amount, deposit.asset, deposit.block) == (
        txid,
        5_000_000,
        "SOL",
        start + 1,
    )
    assert rpc.deposits([str(to)], since=start + 1) == []
    (funded,) = rpc.deposits([str(payer.pubkey())], since=before_funding)  # the spend is no credit
    assert (funded.txid, funded.amount) == (airdrop, 10**9)
    assert rpc.status(str(Keypair().sign_message(b"never sent"))).state == "unknown"


def test_deposits_page_through_signatures(
    node: SolanaRpcFacade, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(solana_rpc, "PAGE", 2)
    rpc = SolanaRpc(node.server.url)
    payer, to = Keypair(), Pubkey.new_unique()
    rpc.call("requestAirdrop", str(payer.pubkey()), 10**9)
    start = rpc.height()
    sent = [rpc.broadcast(_transfer(rpc, payer, to, 1_000_000 + k)) for k in range(5)]
    found = rpc.deposits([str(to)], since=start)
    assert [d.txid for d in found] == sent
    assert [d.amount for d in found] == [1_000_000 + k for k in range(5)]
    assert [d.txid for d in rpc.deposits([str(to)], since=start + 3)] == sent[3:]


def test_refused_transaction_keeps_the_runtime_error(node: SolanaRpcFacade) -> None:
    rpc = SolanaRpc(node.server.url)
    broke = Keypair()  # never funded: cannot pay the fee
    with pytest.raises(ConnectorError, match="Transaction simulation failed") as refused:
        rpc.broadcast(_transfer(rpc, broke, Pubkey.new_unique(), 1))
    assert not refused.value.retryable and "code -32002" in str(refused.value)
    with pytest.raises(ConnectorError, match="not a Solana transaction"):
        rpc.broadcast(b"junk")
    with pytest.raises(ConnectorError, match="unknown solana asset"):
        rpc.balance(str(broke.pubkey()), "USDC")


def test_transport_failure_and_unhealthy_node_are_retryable() -> None:
    def behind() -> int:
        raise RpcFault(-32005, "Node is behind by 42 slots")

    with RpcServer({"getSlot": lambda config=None: behind()}, error_status=200) as sick:
        with pytest.raises(ConnectorError, match="Node is behind") as exc:
            SolanaRpc(sick.url).height()
        assert exc.value.retryable
        url = sick.url
    with pytest.raises(ConnectorError, match="unreachable") as gone:
        SolanaRpc(url, timeout=5).height()
    assert gone.value.retryable


def test_token_balances_by_owner_and_by_account(node: SolanaRpcFacade) -> None:
    from solders.system_program import CreateAccountParams, create_account
    from solders.token.associated import get_associated_token_address
    from spl.token.instructions import (
        create_associated_token_account,
        initialize_mint2,
        mint_to_checked,
    )
    from spl.token.models import InitializeMint2Params, MintToCheckedParams

    from tholos.chains.solana import TOKEN_PROGRAM

    rpc = SolanaRpc(node.server.url)
    admin, mint, owner = Keypair(), Keypair(), Pubkey.new_unique()
    rpc.call("requestAirdrop", str(admin.pubkey()), 10**10)

    def send(*ixs, signers=()):  # type: ignore[no-untyped-def]
        blockhash = Hash.from_string(rpc.recent_blockhash())
        msg = Message.new_with_blockhash(list(ixs), admin.pubkey(), blockhash)
        return rpc.broadcast(bytes(Transaction([admin, *signers], msg, blockhash)))

    rent = int(rpc.call("getMinimumBalanceForRentExemption", 82))  # a mint is 82 bytes
    send(
        create_account(CreateAccountParams(
            from_pubkey=admin.pubkey(), to_pubkey=mint.pubkey(), lamports=rent, space=82,
            owner=TOKEN_PROGRAM)),
        initialize_mint2(InitializeMint2Params(
            decimals=6, program_id=TOKEN_PROGRAM, mint=mint.pubkey(),
            mint_authority=admin.pubkey())),
        create_associated_token_account(admin.pubkey(), owner, mint.pubkey(), TOKEN_PROGRAM),
        signers=(mint,),
    )  # fmt: skip
    ata = get_associated_token_address(owner, mint.pubkey(), TOKEN_PROGRAM)
    send(
        mint_to_checked(MintToCheckedParams(
            program_id=TOKEN_PROGRAM, mint=mint.pubkey(), dest=ata,
            mint_authority=admin.pubkey(), amount=1_250_000, decimals=6))
    )  # fmt: skip
    assert rpc.balance(str(owner), f"spl:{mint.pubkey()}") == 1_250_000
    assert rpc.balance(str(owner), f"spl-account:{ata}") == 1_250_000
    assert rpc.balance(str(owner), f"spl:{Pubkey.new_unique()}") == 0  # no account of that mint
