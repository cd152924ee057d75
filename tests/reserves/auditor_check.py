"""An auditor's check of a tholos proof of reserves with independent tools only.

    python auditor_check.py proof.json [customer.json ...]

Uses eth-account (EIP-191), embit (BIP322 virtual transactions, BIP341/BIP143 sighash, BIP340
and ECDSA verification), PyNaCl (ed25519) and the standard library (Merkle-sum tree): no tholos
import. Rebuilds every signed text from the document's own fields, checks every signature under
its address alone, adds up the balances and compares them with the liability totals, and
checks each given customer file's inclusion proofs against the published roots. Prints one JSON
object; exits 1 if anything fails.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from embit import base58
from embit.ec import PublicKey, SchnorrSig, Signature
from embit.hashes import tagged_hash
from embit.script import Script, Witness, address_to_scriptpubkey
from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput
from eth_account import Account
from eth_account.messages import encode_defunct
from nacl.signing import VerifyKey


def text(chain: str, network: str, address: str, challenge: str) -> str:
    return (
        f"tholos proof of reserves\nchain: {chain}\nnetwork: {network}\naddress: {address}\n"
        f"challenge: {challenge}"
    )


def bip322_simple(address: str, message: bytes, signature_b64: str) -> None:
    """BIP322: to_spend spends 00..00:ffffffff with scriptSig OP_0 PUSH32 H_tag(message) to the
    address's script (value 0); to_sign spends to_spend:0 to OP_RETURN; the witness is the proof."""
    spk = address_to_scriptpubkey(address)
    msg_hash = tagged_hash("BIP0322-signed-message", message)
    to_spend = Transaction(
        version=0,
        vin=[TransactionInput(bytes(32), 0xFFFFFFFF, Script(b"\x00\x20" + msg_hash), 0)],
        vout=[TransactionOutput(0, spk)],
        locktime=0,
    )
    to_sign = Transaction(
        version=0,
        vin=[TransactionInput(to_spend.txid(), 0, sequence=0)],
        vout=[TransactionOutput(0, Script(b"\x6a"))],
        locktime=0,
    )
    items = Witness.parse(base64.b64decode(signature_b64)).items
    program = spk.data
    if program[:2] == b"\x51\x20":
        assert len(items) == 1 and len(items[0]) == 64, "P2TR: one 64-byte signature"
        digest = to_sign.sighash_taproot(0, [spk], [0], sighash=SIGHASH.DEFAULT)
        key = PublicKey.from_xonly(program[2:])
        assert key.schnorr_verify(SchnorrSig.parse(items[0]), digest), "BIP340 fails"
    elif program[:2] == b"\x00\x14":
        der, sec = items
        assert der[-1] == SIGHASH.ALL, "P2WPKH: SIGHASH_ALL"
        assert hashlib.new("ripemd160", hashlib.sha256(sec).digest()).digest() == program[2:]
        code = Script(b"\x76\xa9\x14" + program[2:] + b"\x88\xac")
        digest = to_sign.sighash_segwit(0, code, 0, sighash=SIGHASH.ALL)
        assert PublicKey.parse(sec).verify(Signature.parse(der[:-1]), digest), "ECDSA fails"
    else:
        raise AssertionError("only P2TR and P2WPKH addresses are checked here")


def eip191(address: str, message: str, signature: str) -> None:
    signer = Account.recover_message(encode_defunct(text=message), signature=signature)
    assert signer.lower() == address.lower(), f"recovers to {signer}"


def solana_offchain(address: str, message: bytes, signature_hex: str) -> None:
    """Off-chain message v0: "\\xffsolana offchain", version 0, format, u16 LE length, message."""
    fmt = 0 if all(0x20 <= c <= 0x7E for c in message) else 1
    body = b"\xffsolana offchain" + bytes([0, fmt]) + len(message).to_bytes(2, "little") + message
    VerifyKey(base58.decode(address)).verify(body, bytes.fromhex(signature_hex))


def h(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def inclusion(proof: dict[str, Any], root: str, total: int) -> None:
    def amount(v: int) -> bytes:
        return v.to_bytes(16, "big")

    commitment = h(bytes.fromhex(proof["salt"]), proof["customer_id"].encode())
    node = (h(b"tholos/por/leaf/v1", commitment, amount(proof["amount"])), proof["amount"])
    for step in proof["path"]:
        sib = (bytes.fromhex(step["hash"]), step["sum"])
        left, right = (sib, node) if step["side"] == "left" else (node, sib)
        tag = b"tholos/por/inner/v1"
        node = (h(tag, left[0], amount(left[1]), right[0], amount(right[1])), left[1] + right[1])
    assert node == (bytes.fromhex(root), total), "does not lead to the published root"


def check(doc: dict[str, Any], customers: list[dict[str, Any]]) -> list[str]:
    failures: list[str] = []
    reserves: dict[str, int] = {}
    for e in doc["addresses"]:
        msg = text(e["chain"], e["network"], e["address"], doc["challenge"])
        try:
            assert e["message"] == msg, "the signed text is not this challenge's"
            if e["chain"] == "bitcoin":
                bip322_simple(e["address"], msg.encode(), e["signature"])
            elif e["chain"] == "ethereum":
                eip191(e["address"], msg, e["signature"])
            elif e["chain"] == "solana":
                solana_offchain(e["address"], msg.encode(), e["signature"])
            else:
                raise AssertionError(f"chain {e['chain']}")
            reserves[e["balance"]["asset"]] = (
                reserves.get(e["balance"]["asset"], 0) + e["balance"]["amount"]
            )
        except Exception as exc:  # an auditor reports every failure, whatever raised it
            failures.append(f"{e['address']}: {exc!r}")
    for asset, owed in doc["liabilities"].items():
        if reserves.get(asset, 0) < owed["total"]:
            failures.append(f"{asset}: reserves {reserves.get(asset, 0)} < {owed['total']}")
    for c in customers:
        for p in c["proofs"]:
            try:
                published = doc["liabilities"][p["asset"]]
                inclusion(p, published["root"], published["total"])
            except Exception as exc:
                failures.append(f"inclusion {c['customer_id']} {p['asset']}: {exc!r}")
    return failures


def main(argv: list[str]) -> int:
    doc = json.loads(Path(argv[0]).read_text())
    customers = [json.loads(Path(p).read_text()) for p in argv[1:]]
    failures = check(doc, customers)
    print(
        json.dumps({"ok": not failures, "addresses": len(doc["addresses"]), "failures": failures})
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
