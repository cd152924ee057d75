"""`tholos tx build`'s per-chain builders on their own (the CLI end to end is in
tests/cluster/test_cli_wallets.py): an SPL transfer between the associated token accounts
solana-py derives, refused flags and amounts naming what is wrong."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.transaction import VersionedTransaction
from spl.token.instructions import get_associated_token_address

from tholos.chains.base import WalletRef
from tholos.chains.solana import SOLANA
from tholos.cli import CliError
from tholos.cli.wallet_cmds import _build_ethereum, _build_solana

OWNER = Keypair().pubkey()
WALLET = WalletRef("w", "solana", "devnet", "ed25519", "account", bytes(OWNER))


def _args(**kw: Any) -> argparse.Namespace:
    base = {"token": None, "decimals": None, "blockhash": None, "amount": 0, "to": ""}
    return argparse.Namespace(**{**base, **kw})


def test_spl_transfer_between_associated_accounts() -> None:
    mint, to = Keypair().pubkey(), Keypair().pubkey()
    args = _args(
        to=str(to), amount=1234, token=str(mint), decimals=6, blockhash=str(Hash.new_unique())
    )
    wire, _, shown = _build_solana(WALLET, args)
    tx = VersionedTransaction.from_bytes(wire)
    keys = tx.message.account_keys
    ix = tx.message.instructions[0]
    accounts = [keys[i] for i in bytes(ix.accounts)]
    assert accounts[0] == get_associated_token_address(OWNER, mint)
    assert accounts[1] == mint
    assert accounts[2] == get_associated_token_address(to, mint)
    assert accounts[3] == OWNER
    intent = SOLANA.parse(WALLET, shown.encode()).intent
    assert [(t.asset, t.amount) for t in intent.transfers] == [(f"spl:{mint}", 1234)]
    assert intent.transfers[0].to == str(get_associated_token_address(to, mint))


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"to": str(OWNER), "amount": 1}, "--blockhash"),
        ({"to": "not-base58", "amount": 1, "blockhash": str(Hash.default())}, "base58"),
        (
            {"to": str(OWNER), "amount": 1, "blockhash": str(Hash.default()), "token": str(OWNER)},
            "--decimals",
        ),
    ],
)
def test_solana_refusals(kw: dict[str, Any], needle: str) -> None:
    with pytest.raises(CliError) as e:
        _build_solana(WALLET, _args(**kw))
    assert needle in str(e.value) and e.value.exit_code == 2


def test_ethereum_needs_a_nonce() -> None:
    ref = WalletRef("w", "ethereum", "1", "ecdsa", "eoa", bytes(33), bytes(32))
    args = _args(nonce=None, gas=None, max_fee=None, priority_fee=None, index=None)
    with pytest.raises(CliError, match="--nonce"):
        _build_ethereum(ref, args)
