"""Hash building blocks shared by the protocols: RFC 9380 expand_message_xmd / hash_to_field with
SHA-256, and BIP340 tagged hashes. Public functions of public data; no secrets are involved."""

from __future__ import annotations

import hashlib
from typing import Any

from tholos.crypto.errors import InvalidInput

_SHA256_ZPAD = hashlib.sha256(bytes(64))  # Z_pad = I2OSP(0, s_in_bytes = 64), absorbed once


def expand_message_xmd_sha256(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380, section 5.3.1, expand_message_xmd with H = SHA-256 (b_in_bytes 32, s_in_bytes 64)."""
    if len(dst) > 255:
        raise InvalidInput("expand_message_xmd: DST longer than 255 bytes")
    ell = -(-len_in_bytes // 32)
    if not 0 < len_in_bytes <= 65535 or ell > 255:
        raise InvalidInput("expand_message_xmd: requested length out of range")
    dst_prime = dst + bytes([len(dst)])
    h0 = _SHA256_ZPAD.copy()
    h0.update(msg + len_in_bytes.to_bytes(2, "big") + b"\x00" + dst_prime)
    b0 = h0.digest()
    b_i = hashlib.sha256(b0 + b"\x01" + dst_prime).digest()
    out = [b_i]
    b0_int = int.from_bytes(b0, "big")
    for i in range(2, ell + 1):
        x = (b0_int ^ int.from_bytes(b_i, "big")).to_bytes(32, "big")  # strxor(b_0, b_(i-1))
        b_i = hashlib.sha256(x + bytes([i]) + dst_prime).digest()
        out.append(b_i)
    return b"".join(out)[:len_in_bytes]


def hash_to_field_sha256(msg: bytes, dst: bytes, modulus: int, length: int = 48) -> int:
    """RFC 9380, section 5.2, hash_to_field with count 1 and m 1 over expand_message_xmd(SHA-256)."""
    return int.from_bytes(expand_message_xmd_sha256(msg, dst, length), "big") % modulus


_TAG_PREFIXES: dict[str, Any] = {}


def tagged_hash(tag: str, data: bytes) -> bytes:
    """BIP340 tagged hash: SHA256(SHA256(tag) || SHA256(tag) || data)."""
    h = _TAG_PREFIXES.get(tag)
    if h is None:
        t = hashlib.sha256(tag.encode()).digest()
        h = hashlib.sha256(t + t)
        _TAG_PREFIXES[tag] = h
    h = h.copy()
    h.update(data)
    return h.digest()
