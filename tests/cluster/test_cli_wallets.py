"""`tholos wallets` and `tholos tx` against a cluster the CLI starts itself: addresses checked with
embit (BIP32 from the shown xpub), eth-keys and solders; unsigned transactions decoded by embit,
eth-account (rlp) and solders; bad input a clear error that stores nothing."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import rlp
from embit import script as embit_script
from embit.bip32 import HDKey
from embit.ec import PrivateKey as EmbitPrivateKey
from embit.ec import PublicKey as EmbitPublicKey
from embit.networks import NETWORKS
from embit.psbt import PSBT
from eth_keys import keys as eth_keys
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from tests.cluster.test_cli import cluster_dir, tholos

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
__all__ = ["cluster_dir"]  # the fixture, used by name


def test_wallets_and_transactions(cluster_dir: Path, tmp_path: Path) -> None:
    d = str(cluster_dir)
    tholos("cluster", "init", "--dir", d, "--nodes", "3", "--threshold", "2")
    tholos("cluster", "up", "--dir", d)
    env = {"THOLOS_DIR": d}

    # bitcoin p2tr on a new bip340 key: addresses as embit derives them from the xpub
    _, btc = tholos("wallets", "create", "--chain", "bitcoin", "--network", "regtest", env=env)
    assert btc["address_type"] == "p2tr" and btc["scheme"] == "bip340"
    root = HDKey.from_string(btc["xpub"])
    assert root.my_fingerprint.hex() == btc["master_fingerprint"]

    def p2tr(branch: int, index: int) -> str:
        pub = EmbitPublicKey.parse(root.derive([branch, index]).key.sec())
        return str(embit_script.p2tr(pub).address(NETWORKS["regtest"]))

    assert btc["address"] == p2tr(0, 0)
    _, a = tholos("wallets", "address", btc["wallet_id"], "--index", "7", "--change", env=env)
    assert a["address"] == p2tr(1, 7) and a["path"] == "m/1/7" and a["index"] == 7
    assert a["public_key"] == root.derive([1, 7]).key.sec()[1:].hex()

    # ethereum on an existing ecdsa key; the network name is normalised to the chain id
    _, key = tholos("keys", "create", "--scheme", "ecdsa", env=env)
    _, eth = tholos(
        "wallets", "create", "--chain", "ethereum", "--network", "sepolia",
        "--key", key["key_id"], "--label", "treasury", env=env,
    )  # fmt: skip
    assert eth["network"] == "11155111" and eth["key_id"] == key["key_id"]
    _, a = tholos("wallets", "address", eth["wallet_id"], "--index", "3", env=env)
    child = HDKey.from_string(eth["xpub"]).derive([0, 3]).key.sec()
    assert a["address"] == eth_keys.PublicKey.from_compressed_bytes(child).to_checksum_address()

    _, sol = tholos("wallets", "create", "--chain", "solana", "--network", "devnet", env=env)
    _, sol_key = tholos("keys", "show", sol["key_id"], env=env)
    assert sol["address"] == str(Pubkey.from_bytes(bytes.fromhex(sol_key["public_key"])))

    _, listed = tholos("wallets", "list", env=env)
    assert listed["total"] == 3
    assert [w["wallet_id"] for w in listed["wallets"]] == [
        btc["wallet_id"], eth["wallet_id"], sol["wallet_id"]
    ]  # fmt: skip
    _, shown = tholos("wallets", "show", eth["wallet_id"], env=env)
    assert shown == eth

    # bad input: a clear error, nothing stored
    code, err = tholos(
        "wallets", "create", "--chain", "ethereum", "--network", "goerli", env=env, ok=False
    )
    assert code == 1 and err["error"]["status"] == 400 and err["error"]["code"] == "invalid_request"
    code, err = tholos(
        "wallets", "create", "--chain", "solana", "--network", "devnet", "--key", key["key_id"],
        env=env, ok=False,
    )  # fmt: skip
    assert err["error"]["code"] == "wrong_scheme" and "ecdsa" in err["error"]["message"]
    code, err = tholos(
        "wallets", "address", btc["wallet_id"], "--index", str(2**31), env=env, ok=False
    )
    assert err["error"]["status"] == 400 and err["error"]["code"] == "invalid_request"
    code, err = tholos("wallets", "show", "0" * 32, env=env, ok=False)
    assert err["error"]["code"] == "unknown_wallet"
    assert tholos("wallets", "list", env=env)[1]["total"] == 3

    # bitcoin: a PSBT for a coin of m/0/0, 50 000 sat out, change to m/1/1
    dest_key = EmbitPrivateKey(os.urandom(32)).get_public_key()
    dest = str(embit_script.p2wpkh(dest_key).address(NETWORKS["regtest"]))
    txid = os.urandom(32).hex()
    _, built = tholos(
        "tx", "build", btc["wallet_id"], "--to", dest, "--amount", "50000",
        "--utxo", f"{txid}:1:100000:m/0/0", "--fee", "500", "--change-index", "1", env=env,
    )  # fmt: skip
    intent = built["intent"]
    assert intent["transfers"] == [
        {"asset": "BTC", "to": dest, "amount": 50000, "action": "transfer", "source": ""}
    ]
    assert [c["amount"] for c in intent["change"]] == [49500] and intent["fee"] == 500
    psbt = PSBT.parse(base64.b64decode(built["payload"]))
    outs = {str(o.script_pubkey.address(NETWORKS["regtest"])): o.value for o in psbt.outputs}
    assert outs == {dest: 50000, p2tr(1, 1): 49500}
    assert psbt.inputs[0].txid.hex() == txid and psbt.inputs[0].vout == 1
    f = tmp_path / "tx.psbt"
    f.write_text(built["payload"])
    _, parsed = tholos("tx", "parse", btc["wallet_id"], "--psbt", str(f), env=env)
    assert parsed["intent"] == intent and parsed["signatures_needed"] == 1

    # ethereum: EIP-1559 native transfer and ERC-20 transfer from address 2
    to = eth_keys.PrivateKey(os.urandom(32)).public_key.to_checksum_address()
    token = eth_keys.PrivateKey(os.urandom(32)).public_key.to_checksum_address()
    fees = ["--nonce", "4", "--max-fee", "2000000000", "--priority-fee", "1000000000"]
    _, built = tholos(
        "tx", "build", eth["wallet_id"], "--to", to, "--amount", str(10**15), *fees, env=env
    )
    raw = bytes.fromhex(built["payload"][2:])
    fields = rlp.decode(raw[1:])
    assert raw[0] == 2 and int.from_bytes(fields[0], "big") == 11155111
    assert fields[5] == bytes.fromhex(to[2:]) and int.from_bytes(fields[6], "big") == 10**15
    assert built["intent"]["transfers"][0]["to"] == to
    assert built["intent"]["fee"] == 21000 * 2000000000
    _, built = tholos(
        "tx", "build", eth["wallet_id"], "--to", to, "--amount", "7", "--token", token,
        "--gas", "60000", "--index", "2", *fees, env=env,
    )  # fmt: skip
    t = built["intent"]["transfers"][0]
    assert (t["asset"], t["to"], t["amount"]) == (f"erc20:{token}", to, 7)
    _, addr2 = tholos("wallets", "address", eth["wallet_id"], "--index", "2", env=env)
    assert built["intent"]["details"]["from"] == addr2["address"]
    f = tmp_path / "tx.hex"
    f.write_text(built["payload"])
    _, parsed = tholos("tx", "parse", eth["wallet_id"], "--eth-tx", str(f), "--index", "2", env=env)
    assert parsed["intent"] == built["intent"]

    # solana: a system transfer on the blockhash given
    blockhash = str(Hash.new_unique())
    dest_sol = str(Keypair().pubkey())
    _, built = tholos(
        "tx", "build", sol["wallet_id"], "--to", dest_sol, "--amount", "1000",
        "--blockhash", blockhash, env=env,
    )  # fmt: skip
    wire = VersionedTransaction.from_bytes(base64.b64decode(built["payload"]))
    assert str(wire.message.recent_blockhash) == blockhash
    assert str(wire.message.account_keys[0]) == sol["address"]
    assert built["intent"]["transfers"][0]["to"] == dest_sol
    assert built["intent"]["transfers"][0]["amount"] == 1000
    f = tmp_path / "tx.b64"
    f.write_text(built["payload"])
    _, parsed = tholos("tx", "parse", sol["wallet_id"], "--sol-tx", str(f), env=env)
    assert parsed["intent"] == built["intent"]

    # flags of another chain, and a payload of the wrong kind
    code, err = tholos(
        "tx", "build", sol["wallet_id"], "--to", dest_sol, "--amount", "1", "--nonce", "1",
        env=env, ok=False,
    )  # fmt: skip
    assert code == 2 and "--nonce" in err["error"]["message"]
    code, err = tholos("tx", "parse", btc["wallet_id"], "--sol-tx", str(f), env=env, ok=False)
    assert code == 2 and "--psbt" in err["error"]["message"]
    f.write_text("not a psbt")
    code, err = tholos("tx", "parse", btc["wallet_id"], "--psbt", str(f), env=env, ok=False)
    assert code == 1 and err["error"]["code"] == "invalid_transaction"
