"""The one comparison rule (chains/intent_check.py), on each chain's own parse: an intent is only
accepted when it is exactly what was approved, and the refusal names the first field that is not.
A lower fee, a missing or extra detail and a different type are differences too."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.hash import Hash
from solders.keypair import Keypair

from tests.chains.bitcoin_support import plain_wallet
from tholos.chains.base import ChainError, DerivedIntent, Transfer, WalletRef
from tholos.chains.bitcoin import BITCOIN, Utxo, build_psbt
from tholos.chains.ethereum import ETHEREUM, build_erc20_transfer
from tholos.chains.intent_check import check_intent, difference, first_difference
from tholos.chains.solana import SOLANA, system_transfer, unsigned

BTC = plain_wallet("p2tr").wallet
BTC_TO = BITCOIN.address(plain_wallet("p2tr", bytes(range(1, 33))).wallet, 3).address
ETH = WalletRef(
    "w-eth", "ethereum", "31337", "ecdsa", "eoa", BTC.public_key, BTC.chain_code
)  # any secp256k1 root: only addresses are derived here
TOKEN = "0x1f9840a85d5aF5bf1D1762F925BDADdC4201F984"
ALICE = "0x3535353535353535353535353535353535353535"
MALLORY = "0x000000000000000000000000000000000000dEaD"
SOL_KEY = Keypair.from_seed(bytes(32))
SOL = WalletRef("w-sol", "solana", "devnet", "ed25519", "account", bytes(SOL_KEY.pubkey()))
SOL_TO = Keypair.from_seed(b"\x01" * 32).pubkey()
BLOCKHASH = Hash.new_unique()


def _btc(amount: int = 50_000, fee: int = 1_000) -> DerivedIntent:
    coins = [Utxo("ab" * 32, 0, 100_000, "m/0/0")]
    psbt = build_psbt(BTC, coins, [(BTC_TO, amount)], fee=fee, change_index=0)
    return BITCOIN.parse(BTC, psbt).intent


def _eth(to: str = ALICE, nonce: int = 1, chain_id: int = 31337, fee: int = 30) -> DerivedIntent:
    tx = build_erc20_transfer(
        chain_id=chain_id,
        nonce=nonce,
        token=TOKEN,
        to=to,
        amount=10**6,
        max_fee_per_gas=fee * 10**9,
        max_priority_fee_per_gas=10**9,
    )
    return ETHEREUM.parse(dataclasses.replace(ETH, network=str(chain_id)), tx).intent


def _sol(
    lamports: int = 500, price: int | None = None, blockhash: Hash = BLOCKHASH
) -> DerivedIntent:
    me = SOL_KEY.pubkey()
    wire = unsigned(
        me, [system_transfer(me, SOL_TO, lamports)], blockhash, compute_unit_price=price
    )
    return SOLANA.parse(SOL, wire).intent


def _field(approved: DerivedIntent, derived: DerivedIntent) -> str:
    with pytest.raises(ChainError) as err:
        check_intent(approved, derived)
    return err.value.field


@pytest.mark.parametrize("make", [_btc, _eth, _sol])
def test_the_same_transaction_is_accepted(make: object) -> None:
    check_intent(make(), make())  # type: ignore[operator]


def test_bitcoin_differences_are_named() -> None:
    approved = _btc()
    assert _field(approved, _btc(amount=50_001)) == "transfers[0].amount"
    # A larger fee comes out of the change, which is named first (money moved before fees).
    assert _field(approved, _btc(fee=1_500)) == "change[0].amount"
    # A lower fee is not what was approved either.
    assert _field(approved, dataclasses.replace(approved, fee=approved.fee - 1)) == "fee"


def test_ethereum_differences_are_named() -> None:
    approved = _eth()
    assert _field(approved, _eth(to=MALLORY)) == "transfers[0].to"  # recipient inside calldata
    assert _field(approved, _eth(chain_id=1)) == "network"
    assert _field(approved, _eth(nonce=2)) == "details.nonce"
    assert _field(approved, _eth(fee=20)) == "fee"  # lower too


def test_solana_differences_are_named() -> None:
    approved = _sol()
    assert _field(approved, _sol(lamports=501)) == "transfers[0].amount"
    assert _field(approved, _sol(price=10**6)) == "fee"
    assert _field(approved, _sol(blockhash=Hash.new_unique())) == "details.recent_blockhash"


def test_counts_missing_and_extra_details_and_types() -> None:
    base = _sol()
    two = dataclasses.replace(base, transfers=base.transfers * 2)
    found = difference(two.as_dict(), base.as_dict())
    assert found is not None and found.field == "transfers" and found.counted
    assert first_difference(two.as_dict(), base.as_dict(), "transaction") == (
        "transaction.transfers (the transaction has 2, the intent 1)"
    )
    fewer = dataclasses.replace(base, details={})
    assert _field(base, fewer).startswith("details.")
    assert _field(fewer, base).startswith("details.")
    assert first_difference({"a": True}, {"a": 1}, "x") == "x.a"
    assert first_difference({"a": 1}, {"a": "1"}, "x") == "x.a"


def test_money_fields_are_named_before_incidental_details() -> None:
    approved = _eth()
    both = dataclasses.replace(
        approved,
        transfers=(dataclasses.replace(approved.transfers[0], amount=7),),
        details={**approved.details, "nonce": 99},
    )
    assert _field(approved, both) == "transfers[0].amount"


@settings(max_examples=200, deadline=None)
@given(
    amounts=st.lists(st.integers(0, 2**64), min_size=1, max_size=4),
    other=st.integers(0, 2**64),
    k=st.integers(0, 3),
)
def test_any_changed_amount_is_refused_at_its_index(amounts: list[int], other: int, k: int) -> None:
    k %= len(amounts)
    transfers = tuple(Transfer("BTC", f"to-{i}", a) for i, a in enumerate(amounts))
    approved = DerivedIntent("bitcoin", "regtest", "transaction", transfers, fee=1)
    changed = list(transfers)
    changed[k] = dataclasses.replace(changed[k], amount=other)
    derived = dataclasses.replace(approved, transfers=tuple(changed))
    if other == amounts[k]:
        check_intent(approved, derived)
    else:
        assert _field(approved, derived) == f"transfers[{k}].amount"
