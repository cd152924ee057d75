"""The LiteSVM connector: a transfer signed with an ordinary keypair is broadcast once (the same
bytes again are no error), confirmed after slots pass, and seen as a deposit; a transaction the
runtime refuses is refused with its error."""

from __future__ import annotations

import pytest
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

from tholos.connectors.base import Connector, ConnectorError
from tholos.connectors.solana_litesvm import SolanaLiteSvm


def _transfer(rpc: SolanaLiteSvm, payer: Keypair, to: Pubkey, lamports: int) -> bytes:
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports))
    blockhash = rpc.svm.latest_blockhash()
    msg = Message.new_with_blockhash([ix], payer.pubkey(), blockhash)
    return bytes(Transaction([payer], msg, blockhash))


def test_transfer_confirm_deposit_and_idempotence() -> None:
    rpc = SolanaLiteSvm(confirmations=2)
    assert isinstance(rpc, Connector)
    payer, to = Keypair(), Pubkey.new_unique()
    rpc.fund(str(payer.pubkey()), 10**9)
    start = rpc.height()
    raw = _transfer(rpc, payer, to, 5_000_000)
    txid = rpc.broadcast(raw)
    assert rpc.broadcast(raw) == txid
    assert rpc.balance(str(to)) == 5_000_000
    assert rpc.status(txid).state == "pending"
    rpc.advance()  # another slot passes
    status = rpc.status(txid)
    assert status.state == "confirmed" and status.confirmations == 2
    (deposit,) = rpc.deposits([str(to)], since=start)
    assert (deposit.txid, deposit.amount, deposit.asset) == (txid, 5_000_000, "SOL")
    assert rpc.status("1" * 64).state == "unknown"


def test_refused_by_the_runtime() -> None:
    rpc = SolanaLiteSvm()
    broke = Keypair()  # never funded: cannot pay the fee
    with pytest.raises(ConnectorError, match="refused by the runtime"):
        rpc.broadcast(_transfer(rpc, broke, Pubkey.new_unique(), 1))
    with pytest.raises(ConnectorError, match="not a Solana transaction"):
        rpc.broadcast(b"junk")
