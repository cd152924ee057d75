"""Spends of wallet coins judged by Bitcoin Core's consensus engine (py-bitcoinkernel, regtest):
builder -> the node's parse -> threshold (or plain-key) signatures per target -> finalize -> a
block that connects; tampered transactions, and signatures over a lying amount, do not."""

from __future__ import annotations

from pathlib import Path

import pytest
from embit.transaction import Transaction

from tests.chains.bitcoin_support import (
    WalletUnderTest,
    oracle_sighashes,
    plain_wallet,
    threshold_wallet,
)
from tholos.chains.base import ChainError
from tholos.chains.bitcoin import BITCOIN, Utxo, build_psbt
from tholos.chains.bitcoin.psbt import load_psbt
from tholos.connectors.regtest_chain import SUBSIDY, Regtest

ELSEWHERE = b"\x51"  # OP_TRUE: the other coinbases go to a script nobody here spends
FEE = 2_000


def _script(tw: WalletUnderTest, index: int, change: bool = False) -> bytes:
    from tholos.chains.bitcoin import script_of

    return script_of(BITCOIN.address(tw.wallet, index, change=change).address, "regtest")


def _funded(tmp_path: Path, tw: WalletUnderTest) -> tuple[Regtest, list[Utxo]]:
    """101 blocks: coinbases of blocks 1 and 2 to the wallet's m/0/0 and m/0/1, mature at 101."""
    chain = Regtest(tmp_path)
    coins = []
    for i in range(2):
        cb = chain.mine(_script(tw, i))
        coins.append(Utxo(cb.txid().hex(), 0, SUBSIDY, f"m/0/{i}", previous_tx=cb.serialize()))
    for _ in range(99):
        chain.mine(ELSEWHERE)
    assert chain.height == 101
    return chain, coins


def _sign(tw: WalletUnderTest, psbt: bytes) -> tuple[bytes, str]:
    parsed = BITCOIN.parse(tw.wallet, psbt)
    assert [t.message for t in parsed.targets] == oracle_sighashes(psbt)
    signed = BITCOIN.finalize(tw.wallet, psbt, [tw.sign(t) for t in parsed.targets])
    return signed.raw, signed.txid


def _spend(tw: WalletUnderTest, coins: list[Utxo], version: int = 0) -> bytes:
    dest = BITCOIN.address(threshold_wallet("p2tr").wallet, 0).address
    return build_psbt(
        tw.wallet, coins, [(dest, 30 * 10**8)], fee=FEE, change_index=0, psbt_version=version
    )


WALLETS = {
    "p2tr-frost": lambda: threshold_wallet("p2tr"),
    "p2wpkh-threshold-ecdsa": lambda: threshold_wallet("p2wpkh"),
    "p2tr-plain-key": lambda: plain_wallet("p2tr"),
    "p2wpkh-plain-key": lambda: plain_wallet("p2wpkh"),
}


@pytest.mark.parametrize("kind", sorted(WALLETS))
def test_spend_connects_and_tampered_blocks_do_not(tmp_path: Path, kind: str) -> None:
    tw = WALLETS[kind]()
    chain, coins = _funded(tmp_path, tw)
    psbt = _spend(tw, coins, version=2 if kind.startswith("p2tr-frost") else 0)
    raw, txid = _sign(tw, psbt)
    tx = Transaction.parse(raw)
    assert tx.txid().hex() == txid

    # An output altered after signing: the signatures commit to it.
    altered = Transaction.parse(raw)
    altered.vout[0].value -= 1
    block, _ = chain.block(ELSEWHERE, [altered], FEE + 1)
    assert not chain.submit(block) and chain.height == 101

    # A signature altered: its last byte flipped.
    forged = Transaction.parse(raw)
    item = bytearray(forged.vin[1].witness.items[0])
    item[-2] ^= 1
    forged.vin[1].witness.items[0] = bytes(item)
    block, _ = chain.block(ELSEWHERE, [forged], FEE)
    assert not chain.submit(block) and chain.height == 101

    block, _ = chain.block(ELSEWHERE, [tx], FEE)
    assert chain.submit(block) and chain.height == 102


@pytest.mark.parametrize("address_type", ["p2tr", "p2wpkh"])
def test_a_lying_input_amount(tmp_path: Path, address_type: str) -> None:
    """witness_utxo says 1 sat more than the coin holds. With the previous transaction present the
    node refuses; without it, the signature it makes commits to the lie and the engine refuses it
    (BIP341 signs every input's amount; BIP143 signs the input's own)."""
    tw = threshold_wallet(address_type)
    chain, coins = _funded(tmp_path, tw)
    lying = [Utxo(c.txid, c.vout, c.amount + 1, c.path, c.previous_tx) for c in coins]
    with pytest.raises(ChainError) as err:
        BITCOIN.parse(tw.wallet, _spend(tw, lying))
    assert err.value.field == "inputs[0].non_witness_utxo"

    bare = [Utxo(c.txid, c.vout, c.amount, c.path) for c in coins]
    bare[0] = Utxo(bare[0].txid, 0, bare[0].amount + 1, bare[0].path)
    psbt = _spend(tw, bare)
    parsed = BITCOIN.parse(tw.wallet, psbt)
    assert parsed.intent.fee == FEE  # what the node is told; the coins pay FEE - 1
    raw, _ = _sign(tw, psbt)
    block, _ = chain.block(ELSEWHERE, [Transaction.parse(raw)], FEE - 1)
    assert not chain.submit(block) and chain.height == 101

    # The honest spend of the same coins connects on the same chain.
    raw, _ = _sign(tw, _spend(tw, coins))
    block, _ = chain.block(ELSEWHERE, [Transaction.parse(raw)], FEE)
    assert chain.submit(block) and chain.height == 102


def test_psbt_after_finalize_carries_key_path_signature(tmp_path: Path) -> None:
    tw = threshold_wallet("p2tr")
    _, coins = _funded(tmp_path, tw)
    psbt = _spend(tw, coins)
    parsed = BITCOIN.parse(tw.wallet, psbt)
    sigs = [tw.sign(t) for t in parsed.targets]
    signed = BITCOIN.finalize(tw.wallet, psbt, sigs)
    final = load_psbt(signed.extra["psbt"])
    for inp, sig in zip(final.inputs, sigs, strict=True):
        assert inp.unknown[b"\x13"] == sig  # PSBT_IN_TAP_KEY_SIG
        assert inp.final_scriptwitness.items == [sig]
