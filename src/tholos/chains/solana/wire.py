"""The Solana wire transaction as the node receives it: decoded once, checked to be canonical, and
the exact message bytes its signers sign.

Wire form (Solana docs, "Transactions"): shortvec signature count, 64-byte signature slots in the
order of the message's first `num_required_signatures` account keys, then the message (legacy, or
a version prefix 0x80 | v). An empty slot is 64 zero bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from solders.message import Message, MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from tholos.chains.base import ChainError

EMPTY_SIGNATURE = bytes(64)
MAX_TRANSACTION = 1232  # PACKET_DATA_SIZE: the largest transaction a Solana validator accepts
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/=\s]+")


@dataclass(frozen=True)
class WireTransaction:
    """A decoded, canonical transaction: its message, keys, signature slots and signed bytes."""

    transaction: VersionedTransaction
    message: Message | MessageV0
    version: str  # "legacy" | "0"
    account_keys: tuple[Pubkey, ...]
    signatures: tuple[bytes, ...]
    message_bytes: bytes  # what every signer signs (legacy: bytes(msg); v0: to_bytes_versioned)

    @property
    def signer_keys(self) -> tuple[Pubkey, ...]:
        return self.account_keys[: len(self.signatures)]

    def with_signature(self, slot: int, signature: bytes) -> VersionedTransaction:
        """A copy of the transaction with `signature` in signer slot `slot`."""
        sigs = [Signature.from_bytes(s) for s in self.signatures]
        sigs[slot] = Signature.from_bytes(signature)
        return VersionedTransaction.populate(self.message, sigs)


def raw_bytes(payload: bytes) -> bytes:
    """The wire bytes of `payload`: raw bytes, or base64 text of them.

    Unambiguous: a transaction to sign has an all-zero signature slot, and base64 text holds no
    zero byte."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise ChainError("expected the wire transaction as bytes", field="payload")
    data = bytes(payload)
    if data and _BASE64_TEXT.fullmatch(data):
        try:
            data = base64.b64decode(b"".join(data.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ChainError(f"not valid base64: {exc}", field="payload") from None
    return data


def decode(payload: bytes) -> WireTransaction:
    """Decode and check a wire transaction; ChainError names what is malformed."""
    data = raw_bytes(payload)
    if not data:
        raise ChainError("empty transaction", field="payload")
    if len(data) > MAX_TRANSACTION:
        raise ChainError(
            f"{len(data)} bytes, more than the {MAX_TRANSACTION} Solana accepts", field="payload"
        )
    try:
        tx = VersionedTransaction.from_bytes(data)
    except Exception as exc:  # solders raises ValueError and its own error types
        raise ChainError(f"malformed transaction: {exc}", field="payload") from None
    # solders ignores bytes after the message and tolerates non-canonical lengths: re-encode.
    if bytes(tx) != data:
        raise ChainError("not canonical: trailing bytes or a non-minimal length", field="payload")
    msg = tx.message
    if isinstance(msg, MessageV0):
        version = "0"
        if msg.address_table_lookups:
            raise ChainError(
                "the v0 message loads accounts from address lookup tables, which the node cannot "
                "resolve without chain state: send it with every account in the message",
                field="message.address_table_lookups",
            )
        message_bytes = to_bytes_versioned(msg)
    elif isinstance(msg, Message):
        version = "legacy"
        message_bytes = bytes(msg)
    else:
        raise ChainError(
            f"message version {type(msg).__name__} is not supported (legacy and v0 are)",
            field="message.version",
        )
    header = msg.header
    keys = tuple(msg.account_keys)
    signatures = tuple(bytes(s) for s in tx.signatures)
    if header.num_required_signatures != len(signatures):
        raise ChainError(
            f"{len(signatures)} signature slots for {header.num_required_signatures} required "
            "signers",
            field="signatures",
        )
    try:
        tx.sanitize()
    except Exception as exc:
        raise ChainError(f"malformed message: {exc}", field="message") from None
    if len(set(keys)) != len(keys):
        raise ChainError("an account key appears twice", field="message.account_keys")
    return WireTransaction(tx, msg, version, keys, signatures, message_bytes)
