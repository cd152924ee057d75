"""The Ethereum JSON-RPC connector against anvil (revm), a node nobody here wrote: balances,
nonces, fees, idempotent broadcast, receipts with confirmations, and deposits seen."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account

from tests.engines import running_anvil
from tholos.connectors.base import Connector, ConnectorError
from tholos.connectors.ethereum import EthereumRpc

pytestmark = pytest.mark.slow

# anvil's first dev account (its well-known test mnemonic), funded with 10,000 ETH
FUNDED = Account.from_key("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
ETH = 10**18


@pytest.fixture(scope="module")
def rpc() -> Iterator[EthereumRpc]:
    with running_anvil() as url:
        yield EthereumRpc(url, confirmations=2)


def _transfer(rpc: EthereumRpc, to: str, value: int, nonce: int | None = None) -> bytes:
    fees = rpc.fees()
    tx = {
        "type": 2,
        "chainId": rpc.chain_id(),
        "nonce": rpc.nonce(FUNDED.address) if nonce is None else nonce,
        "to": to,
        "value": value,
        "gas": 21_000,
        "maxFeePerGas": fees.max_fee,
        "maxPriorityFeePerGas": fees.max_priority_fee,
    }
    return bytes(FUNDED.sign_transaction(tx).raw_transaction)


def test_is_a_connector(rpc: EthereumRpc) -> None:
    assert isinstance(rpc, Connector)
    assert rpc.chain_id() == 31337


def test_transfer_broadcast_confirm_and_deposit(rpc: EthereumRpc) -> None:
    to = Account.create().address
    start = rpc.height()
    raw = _transfer(rpc, to, ETH // 10)
    txid = rpc.broadcast(raw)
    assert rpc.broadcast(raw) == txid  # the same bytes again: no error, same id
    assert rpc.balance(to) == ETH // 10
    status = rpc.status(txid)
    assert status.state == "pending" and status.confirmations == 1  # 1 of the 2 required
    rpc.call("evm_mine")
    status = rpc.status(txid)
    assert status.state == "confirmed" and status.confirmations == 2
    (deposit,) = rpc.deposits([to], since=start)
    assert (deposit.txid, deposit.address, deposit.amount, deposit.asset) == (
        txid,
        to,
        ETH // 10,
        "ETH",
    )
    assert rpc.deposits([to], since=rpc.height()) == []


def test_unknown_transaction_and_refused_broadcast(rpc: EthereumRpc) -> None:
    assert rpc.status("0x" + "00" * 32).state == "unknown"
    stale = _transfer(rpc, Account.create().address, 1, nonce=0)  # nonce already used
    with pytest.raises(ConnectorError, match="nonce"):
        rpc.broadcast(stale)


def test_unreachable_node_is_retryable() -> None:
    dead = EthereumRpc("http://127.0.0.1:9", timeout=1)
    with pytest.raises(ConnectorError) as info:
        dead.height()
    assert info.value.retryable
