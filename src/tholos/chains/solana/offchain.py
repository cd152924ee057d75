"""Solana off-chain messages, version 0 (the format of solana-sdk's `OffchainMessage` and
`solana sign-offchain-message`): the signing domain "\\xffsolana offchain", version (u8, 0),
message format (u8: 0 restricted ASCII, 1 limited UTF-8, 2 extended UTF-8), length (u16 little
endian), then the message. The ed25519 signature is over those bytes, header included.
"""

from __future__ import annotations

SIGNING_DOMAIN = b"\xffsolana offchain"
VERSION = 0
HEADER_LEN = len(SIGNING_DOMAIN) + 1 + 1 + 2
MAX_LEN_LEDGER = 1232 - HEADER_LEN  # formats 0 and 1 must fit a packet (PACKET_DATA_SIZE)
MAX_LEN = 0xFFFF - HEADER_LEN
FORMAT = "solana-offchain-v0"


def message_format(message: bytes) -> int:
    """0 for printable ASCII that fits a packet, 1 for UTF-8 that does, else 2."""
    if not message:
        raise ValueError("an off-chain message is not empty")
    if len(message) > MAX_LEN:
        raise ValueError(f"an off-chain message is at most {MAX_LEN} bytes")
    if len(message) <= MAX_LEN_LEDGER and all(0x20 <= c <= 0x7E for c in message):
        return 0
    message.decode("utf-8")  # UnicodeDecodeError (a ValueError) for bytes that are not
    return 1 if len(message) <= MAX_LEN_LEDGER else 2


def serialize(message: bytes) -> bytes:
    """The bytes an off-chain message's signature covers."""
    fmt = message_format(message)
    return SIGNING_DOMAIN + bytes([VERSION, fmt]) + len(message).to_bytes(2, "little") + message
