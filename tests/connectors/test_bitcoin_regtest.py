"""The regtest connector over libbitcoinkernel: coinbases mature after 100 blocks, a spend signed by
a threshold key is broadcast (mined) once and confirmed, deposits and balances follow the chain,
and a tampered transaction is rejected by the consensus engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chains.bitcoin_support import threshold_wallet
from tholos.chains.bitcoin import BITCOIN, Utxo, build_psbt
from tholos.connectors.base import Connector, ConnectorError
from tholos.connectors.bitcoin_regtest import BitcoinRegtest
from tholos.connectors.regtest_chain import SUBSIDY

pytestmark = pytest.mark.slow


def test_mine_spend_confirm_deposit(tmp_path: Path) -> None:
    rpc = BitcoinRegtest(tmp_path, confirmations=2)
    assert isinstance(rpc, Connector)
    sender = threshold_wallet("p2tr")
    receiver = threshold_wallet("p2wpkh")
    funding = BITCOIN.address(sender.wallet, 0).address
    to = BITCOIN.address(receiver.wallet, 3).address
    rpc.mine(1, funding)
    assert rpc.utxos(funding) == []  # immature coinbase
    rpc.mine(99)
    (coin,) = rpc.utxos(funding)
    assert rpc.balance(funding) == SUBSIDY
    psbt = build_psbt(
        sender.wallet,
        [Utxo(coin.txid, coin.vout, coin.amount, "m/0/0")],
        [(to, 10**8)],
        fee=1_000,
        change_index=0,
    )
    parsed = BITCOIN.parse(sender.wallet, psbt)
    signed = BITCOIN.finalize(sender.wallet, psbt, [sender.sign(t) for t in parsed.targets])
    start = rpc.height()
    txid = rpc.broadcast(signed.raw)
    assert txid == signed.txid and rpc.broadcast(signed.raw) == txid  # idempotent
    assert rpc.status(txid).state == "pending"
    rpc.mine()
    status = rpc.status(txid)
    assert status.state == "confirmed" and status.confirmations == 2
    assert rpc.balance(to) == 10**8
    assert rpc.balance(funding) == 0  # spent; the change went to m/1/0
    change = BITCOIN.address(sender.wallet, 0, change=True).address
    assert rpc.balance(change) == SUBSIDY - 10**8 - 1_000
    (deposit,) = rpc.deposits([to], since=start)
    assert (deposit.txid, deposit.amount, deposit.confirmations) == (txid, 10**8, 2)
    with pytest.raises(ConnectorError, match="spends an unknown or spent output"):
        rpc.broadcast(signed.raw[:-4] + b"\x01\x00\x00\x00")  # other locktime: a double spend


def test_tampered_signature_is_rejected_by_consensus(tmp_path: Path) -> None:
    rpc = BitcoinRegtest(tmp_path)
    sender = threshold_wallet("p2tr")
    funding = BITCOIN.address(sender.wallet, 0).address
    rpc.mine(1, funding)
    rpc.mine(99)
    (coin,) = rpc.utxos(funding)
    psbt = build_psbt(
        sender.wallet,
        [Utxo(coin.txid, coin.vout, coin.amount, "m/0/0")],
        [(funding, SUBSIDY - 500)],
        fee=500,
    )
    parsed = BITCOIN.parse(sender.wallet, psbt)
    raw = bytearray(
        BITCOIN.finalize(sender.wallet, psbt, [sender.sign(t) for t in parsed.targets]).raw
    )
    raw[-10] ^= 1  # inside the witness signature
    height = rpc.height()
    with pytest.raises(ConnectorError, match="consensus"):
        rpc.broadcast(bytes(raw))
    assert rpc.height() == height
    with pytest.raises(ConnectorError, match="not a Bitcoin transaction"):
        rpc.broadcast(b"junk")
