"""Checks of one proof of control, standalone: the text rebuilt from the proof's own fields, the
signature checked in the chain's format under the address alone (no cluster, no wallet data).

- `bip322-simple`: the witness of BIP322's virtual to_sign transaction (base64), P2TR (one
  64-byte BIP340 signature under the output key) or P2WPKH (DER signature with SIGHASH_ALL and
  the key whose HASH160 is the witness program);
- `eip191`: r||s||v (0x-hex, 65 bytes) of personal_sign over the text, recovering to the address;
- `solana-offchain-v0`: an ed25519 signature (hex) over the version-0 off-chain message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

from coincurve import PublicKey, PublicKeyXOnly
from embit.script import Witness
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from solders.pubkey import Pubkey

from tholos.chains.base import ChainError
from tholos.chains.bitcoin import bip322
from tholos.chains.bitcoin.wallet import script_of
from tholos.chains.ethereum.chain import recover_signature
from tholos.chains.ethereum.wallet import keccak256, parse_address
from tholos.chains.proof_of_control import message_text
from tholos.chains.solana import offchain

FORMATS = {"bitcoin": bip322.FORMAT, "ethereum": "eip191", "solana": offchain.FORMAT}


class ProofError(ValueError):
    """A proof that does not hold; the message names the address and what fails."""


def _field(entry: Mapping[str, Any], name: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value:
        raise ProofError(f"{name} missing or not a string")
    return value


def check_control(entry: Mapping[str, Any], challenge: str) -> None:
    """Raise ProofError unless `entry` is a valid signature over the expected text."""
    chain, network = _field(entry, "chain"), _field(entry, "network")
    address, signature = _field(entry, "address"), _field(entry, "signature")
    expected = FORMATS.get(chain)
    if expected is None or entry.get("format") != expected:
        raise ProofError(f"{address}: format {entry.get('format')!r} for chain {chain!r}")
    try:
        text = message_text(chain, network, address, challenge)
    except ChainError as exc:
        raise ProofError(f"challenge: {exc}") from None
    if entry.get("message") != text:
        raise ProofError(f"{address}: the message is not the text for this challenge")
    try:
        {"bitcoin": _bitcoin, "ethereum": _ethereum, "solana": _solana}[chain](
            network, address, text.encode(), signature
        )
    except (ChainError, ValueError, binascii.Error) as exc:
        raise ProofError(f"{address}: {exc}") from None


def _bitcoin(network: str, address: str, message: bytes, signature: str) -> None:
    script = script_of(address, network)
    digest = bip322.sighash(script, message)
    stack = Witness.parse(base64.b64decode(signature, validate=True)).items
    if script[0] == 0x51:
        if len(stack) != 1 or len(stack[0]) != 64:
            raise ValueError("a P2TR simple signature is one 64-byte BIP340 signature")
        if not PublicKeyXOnly(script[2:]).verify(bytes(stack[0]), digest):
            raise ValueError("the BIP340 signature does not verify under the output key")
        return
    if len(stack) != 2 or stack[0][-1:] != b"\x01" or len(stack[1]) != 33:
        raise ValueError("a P2WPKH simple signature is [DER||SIGHASH_ALL, compressed key]")
    key = bytes(stack[1])
    if hashlib.new("ripemd160", hashlib.sha256(key).digest()).digest() != script[2:]:
        raise ValueError("the witness key is not the address's")
    if not PublicKey(key).verify(bytes(stack[0][:-1]), digest, hasher=None):
        raise ValueError("the ECDSA signature does not verify")


def _ethereum(network: str, address: str, message: bytes, signature: str) -> None:
    if not signature.startswith("0x"):
        raise ValueError("an EIP-191 signature is 0x-hex")
    digest = keccak256(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message)
    recover_signature(digest, bytes.fromhex(signature[2:]), parse_address(address, "address"))


def _solana(network: str, address: str, message: bytes, signature: str) -> None:
    key = bytes(Pubkey.from_string(address))
    try:
        VerifyKey(key).verify(offchain.serialize(message), bytes.fromhex(signature))
    except BadSignatureError:
        raise ValueError("the ed25519 signature does not verify") from None


def signature_of(chain: str, result: Mapping[str, Any]) -> str:
    """A proof's signature string from a signed request's result (`raw`, `encoding`)."""
    raw = str(result["raw"])
    if chain == "ethereum":
        return "0x" + raw
    return raw  # bitcoin: the base64 witness; solana: the hex signature
