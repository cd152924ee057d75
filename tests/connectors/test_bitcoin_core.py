"""The Bitcoin Core JSON-RPC connector against a Bitcoin Core-shaped RPC facade over the kernel
regtest chain (no bitcoind here; chain state and validity are libbitcoinkernel's): a threshold
spend is broadcast, confirmed after a block, sent again without error, seen as a deposit;
balances exclude immature coinbases; the node's refusals keep its code and message and are not
retryable, transport failures and warm-up are."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chains.bitcoin_support import threshold_wallet
from tests.connectors.bitcoin_core_facade import BitcoinCoreFacade
from tests.connectors.rpc_facade import RpcFault, RpcServer
from tholos.chains.bitcoin import BITCOIN, Utxo, build_psbt
from tholos.connectors.base import Connector, ConnectorError
from tholos.connectors.bitcoin_core import BitcoinCore
from tholos.connectors.bitcoin_regtest import BitcoinRegtest
from tholos.connectors.regtest_chain import SUBSIDY

pytestmark = pytest.mark.slow


@pytest.fixture()
def node(tmp_path: Path) -> Iterator[BitcoinCoreFacade]:
    facade = BitcoinCoreFacade(BitcoinRegtest(tmp_path / "chain"))
    with facade.server:
        yield facade


def _spend(funding_coin: dict, sender, to: str, amount: int) -> bytes:  # type: ignore[no-untyped-def]
    psbt = build_psbt(
        sender.wallet,
        [Utxo(funding_coin["txid"], funding_coin["vout"], funding_coin["amount"], "m/0/0")],
        [(to, amount)],
        fee=1_000,
        change_index=0,
    )
    parsed = BITCOIN.parse(sender.wallet, psbt)
    return BITCOIN.finalize(sender.wallet, psbt, [sender.sign(t) for t in parsed.targets]).raw


def test_broadcast_confirm_idempotent_deposit(node: BitcoinCoreFacade) -> None:
    url = node.server.url.replace("http://", "http://tholos:regtest-password@")
    rpc = BitcoinCore(url, confirmations=2)
    assert isinstance(rpc, Connector) and "password" not in repr(rpc)
    assert rpc.network() == "regtest"
    sender, receiver = threshold_wallet("p2tr"), threshold_wallet("p2wpkh")
    funding = BITCOIN.address(sender.wallet, 0).address
    to = BITCOIN.address(receiver.wallet, 3).address
    node.mine(1, funding)
    (immature,) = rpc.utxos(funding)
    assert immature["coinbase"] and immature["amount"] == SUBSIDY
    assert rpc.balance(funding) == 0  # immature coinbase is not spendable
    node.mine(99)
    assert rpc.balance(funding) == SUBSIDY
    raw = _spend(rpc.utxos(funding)[0], sender, to, 10**8)
    start = rpc.height()
    assert rpc.status("00" * 32).state == "unknown"
    txid = rpc.broadcast(raw)
    assert rpc.broadcast(raw) == txid  # the node answers -27; the connector takes it as sent
    first = rpc.status(txid)
    assert (first.state, first.confirmations, first.block) == ("pending", 1, start + 1)
    node.mine()
    status = rpc.status(txid)
    assert (status.state, status.confirmations) == ("confirmed", 2)
    assert rpc.balance(to) == 10**8
    (deposit,) = rpc.deposits([to], since=start)
    assert (deposit.txid, deposit.amount, deposit.block, deposit.confirmations) == (
        txid,
        10**8,
        start + 1,
        2,
    )
    assert rpc.deposits([to], since=start + 1) == []
    with pytest.raises(ConnectorError, match="no fee estimate") as fee:
        rpc.fee_rate()
    assert fee.value.retryable


def test_status_without_txindex_reads_the_utxo_set(tmp_path: Path) -> None:
    node = BitcoinCoreFacade(BitcoinRegtest(tmp_path), txindex=False)
    with node.server:
        rpc = BitcoinCore(node.server.url.replace("//", "//tholos:regtest-password@"))
        sender = threshold_wallet("p2wpkh")
        funding = BITCOIN.address(sender.wallet, 0).address
        node.mine(1, funding)
        node.mine(99)
        (coin,) = rpc.utxos(funding)
        txid = rpc.broadcast(_spend(coin, sender, funding, 10**7))
        status = rpc.status(txid)
        assert (status.state, status.confirmations) == ("confirmed", 1)


def test_refusals_keep_the_node_message(node: BitcoinCoreFacade, tmp_path: Path) -> None:
    cookie = tmp_path / ".cookie"
    cookie.write_text("tholos:regtest-password")
    rpc = BitcoinCore(node.server.url, cookie=cookie)
    sender = threshold_wallet("p2tr")
    funding = BITCOIN.address(sender.wallet, 0).address
    node.mine(1, funding)
    node.mine(99)
    (coin,) = rpc.utxos(funding)
    raw = bytearray(_spend(coin, sender, funding, 10**8))
    raw[-10] ^= 1  # inside the witness signature: the kernel refuses the block
    height = rpc.height()
    with pytest.raises(ConnectorError, match=r"code -26") as refused:
        rpc.broadcast(bytes(raw))
    assert not refused.value.retryable and "consensus engine" in str(refused.value)
    assert rpc.height() == height
    other = dict(coin, txid="11" * 32)
    with pytest.raises(ConnectorError, match="bad-txns-inputs-missingorspent") as missing:
        rpc.broadcast(_spend(other, sender, funding, 10**8))
    assert not missing.value.retryable
    with pytest.raises(ConnectorError, match="not a Bitcoin transaction"):
        rpc.broadcast(b"junk")
    cookie.write_text("tholos:wrong")
    with pytest.raises(ConnectorError, match="refused the credentials") as denied:
        rpc.height()
    assert not denied.value.retryable


def test_transport_failure_and_warmup_are_retryable() -> None:
    def warming() -> int:
        raise RpcFault(-28, "Loading block index…")

    with RpcServer({"getblockcount": warming}) as warm:
        with pytest.raises(ConnectorError, match="Loading block index") as exc:
            BitcoinCore(warm.url).height()
        assert exc.value.retryable
        url = warm.url
    with pytest.raises(ConnectorError, match="unreachable") as gone:
        BitcoinCore(url, timeout=5).height()
    assert gone.value.retryable


def test_a_transaction_in_the_mempool_is_pending_until_mined(tmp_path: Path) -> None:
    node = BitcoinCoreFacade(BitcoinRegtest(tmp_path), mempool=True)
    with node.server:
        rpc = BitcoinCore(node.server.url.replace("//", "//tholos:regtest-password@"))
        sender = threshold_wallet("p2tr")
        funding = BITCOIN.address(sender.wallet, 0).address
        node.mine(1, funding)
        node.mine(99)
        (coin,) = rpc.utxos(funding)
        raw = _spend(coin, sender, funding, 10**8)
        height = rpc.height()
        txid = rpc.broadcast(raw)
        assert rpc.broadcast(raw) == txid  # "txn-already-in-mempool" is success
        waiting = rpc.status(txid)
        assert (waiting.state, waiting.confirmations, waiting.block) == ("pending", 0, None)
        assert rpc.height() == height
        node.mine()
        done = rpc.status(txid)
        assert (done.state, done.confirmations, done.block) == ("confirmed", 1, height + 1)
