"""Wallet addresses from the public side against standard wallets (embit, private side) and the
BIP341 vectors (taproot output keys and key-path sighashes)."""

from __future__ import annotations

from typing import Any

import pytest
from bitcointx.core import CTransaction, CTxOut
from bitcointx.core.script import CScript, SignatureHashSchnorr
from coincurve import PrivateKey
from embit import bip32 as embit_bip32
from embit import script as embit_script
from embit.networks import NETWORKS
from embit.transaction import Transaction

from tests.chains.bitcoin_support import threshold_wallet
from tests.conftest import load_json_vector
from tholos.chains.base import ChainError, WalletRef
from tholos.chains.bitcoin import BITCOIN, script_of
from tholos.chains.bitcoin.sighash import bip341_key_path
from tholos.chains.bitcoin.wallet import taproot_script
from tholos.crypto.frost import FROST_BIP340
from tholos.crypto.groups.secp256k1 import SECP256K1

NETS = {"mainnet": "main", "testnet": "test", "signet": "signet", "regtest": "regtest"}
PREFIX = {"mainnet": "bc1", "testnet": "tb1", "signet": "tb1", "regtest": "bcrt1"}


@pytest.mark.parametrize("network", sorted(NETS))
@pytest.mark.parametrize("address_type", ["p2tr", "p2wpkh"])
def test_public_side_addresses_are_what_an_xprv_derives(network: str, address_type: str) -> None:
    root = embit_bip32.HDKey.from_seed(bytes(range(7, 39)))
    scheme = "bip340" if address_type == "p2tr" else "ecdsa"
    wallet = WalletRef(
        "w",
        "bitcoin",
        network,
        scheme,
        address_type,
        root.key.get_public_key().sec(),
        root.chain_code,
    )
    for change in (False, True):
        for i in (0, 1, 2, 1000):
            info = BITCOIN.address(wallet, i, change=change)
            child = root.derive([1 if change else 0, i]).key.get_public_key()
            sc = embit_script.p2tr(child) if address_type == "p2tr" else embit_script.p2wpkh(child)
            assert info.address == sc.address(NETWORKS[NETS[network]])
            assert info.address.startswith(
                PREFIX[network] + ("p" if address_type == "p2tr" else "q")
            )
            assert info.path == f"m/{1 if change else 0}/{i}" and info.change is change
            assert info.public_key == (child.xonly() if address_type == "p2tr" else child.sec())
            assert script_of(info.address, network) == sc.data


def test_threshold_taproot_address_is_the_frost_signing_key() -> None:
    tw = threshold_wallet("p2tr")
    from tholos.crypto import bip32

    point = SECP256K1.deserialize_element(tw.wallet.public_key)
    root = bip32.ExtendedPublicKey(public_key=point, chain_code=tw.wallet.chain_code or b"")
    for i in range(3):
        info = BITCOIN.address(tw.wallet, i)
        tweak = bip32.derive(root, f"m/0/{i}").tweak
        out = FROST_BIP340.effective_key(point, tweak, b"").public_key_bytes
        assert script_of(info.address, "regtest") == b"\x51\x20" + out


def test_bad_indices_and_foreign_addresses_are_refused() -> None:
    tw = threshold_wallet("p2tr")
    for bad in (-1, 2**31):
        with pytest.raises(ChainError) as err:
            BITCOIN.address(tw.wallet, bad)
        assert err.value.field == "index"
    mainnet = BITCOIN.address(WalletRef(**{**tw.wallet.__dict__, "network": "mainnet"}), 0).address
    with pytest.raises(ChainError) as err:
        script_of(mainnet, "regtest")
    assert err.value.field == "address"


def _keypath_vectors() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    data = load_json_vector("bip341", "keypath_spending.json")["keyPathSpending"][0]
    return data["given"], data["inputSpending"]


def test_bip341_vector_output_keys() -> None:
    given, inputs = _keypath_vectors()
    checked = 0
    for case in inputs:
        if case["given"]["merkleRoot"] is not None:
            continue  # a script tree: not the wallet's key-path-only outputs
        internal = PrivateKey(bytes.fromhex(case["given"]["internalPrivkey"])).public_key.format()[
            1:
        ]
        spent = given["utxosSpent"][case["given"]["txinIndex"]]["scriptPubKey"]
        assert taproot_script(internal).hex() == spent
        checked += 1
    assert checked >= 1


def test_bip341_vector_sighashes_default_type() -> None:
    given, inputs = _keypath_vectors()
    tx = Transaction.parse(bytes.fromhex(given["rawUnsignedTx"]))
    scripts = [bytes.fromhex(u["scriptPubKey"]) for u in given["utxosSpent"]]
    amounts = [u["amountSats"] for u in given["utxosSpent"]]
    ctx = CTransaction.deserialize(bytes.fromhex(given["rawUnsignedTx"]))
    spent = [CTxOut(a, CScript(s)) for a, s in zip(amounts, scripts, strict=True)]
    default = [c for c in inputs if c["given"]["hashType"] == 0]
    assert default, "the BIP341 vectors carry SIGHASH_DEFAULT inputs"
    for case in default:
        i = case["given"]["txinIndex"]
        ours = bip341_key_path(tx, i, scripts, amounts)
        assert ours.hex() == case["intermediary"]["sigHash"]
        assert ours == bytes(SignatureHashSchnorr(ctx, i, spent))
