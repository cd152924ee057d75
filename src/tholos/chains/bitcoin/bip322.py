"""BIP322 "simple" signatures: the virtual to_spend / to_sign transactions and their sighash.

BIP322: to_spend (version 0, locktime 0) spends the null outpoint 00..00:0xFFFFFFFF with
scriptSig `OP_0 PUSH32 message_hash` (sequence 0) to one output of value 0 paying the address's
scriptPubKey; to_sign (version 0, locktime 0) spends to_spend:0 (sequence 0) to one output of
value 0 with scriptPubKey `OP_RETURN`. The signature is to_sign's witness (a "simple" signature:
the witness stack, consensus-serialised, base64 encoded). message_hash is the BIP340 tagged hash
"BIP0322-signed-message" of the message. Sighashes are embit's (BIP341 SIGHASH_DEFAULT key path,
BIP143 SIGHASH_ALL), as for transactions (`sighash.py`).
"""

from __future__ import annotations

from typing import Any

from embit.hashes import tagged_hash
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from tholos.chains.bitcoin.sighash import bip143_p2wpkh, bip341_key_path

TAG = "BIP0322-signed-message"
FORMAT = "bip322-simple"


def message_hash(message: bytes) -> bytes:
    return bytes(tagged_hash(TAG, message))


def to_spend(script_pubkey: bytes, message: bytes) -> Any:
    """The virtual transaction whose one output the proof spends."""
    vin = TransactionInput(
        b"\x00" * 32,
        0xFFFFFFFF,
        script_sig=Script(b"\x00\x20" + message_hash(message)),
        sequence=0,
    )
    return Transaction(
        version=0, vin=[vin], vout=[TransactionOutput(0, Script(script_pubkey))], locktime=0
    )


def to_sign(spend: Any) -> Any:
    """The virtual transaction the signature signs (witness left empty)."""
    vin = TransactionInput(spend.txid(), 0, sequence=0)
    return Transaction(
        version=0, vin=[vin], vout=[TransactionOutput(0, Script(b"\x6a"))], locktime=0
    )


def sighash(script_pubkey: bytes, message: bytes) -> bytes:
    """The digest the address's key signs: BIP341 key path for P2TR, BIP143 for P2WPKH."""
    tx = to_sign(to_spend(script_pubkey, message))
    if len(script_pubkey) == 34 and script_pubkey[:2] == b"\x51\x20":
        return bip341_key_path(tx, 0, [script_pubkey], [0])
    if len(script_pubkey) == 22 and script_pubkey[:2] == b"\x00\x14":
        return bip143_p2wpkh(tx, 0, script_pubkey[2:], 0)
    raise ValueError("BIP322 simple signatures here are for P2TR and P2WPKH addresses")
