"""Sealing to an X25519 key (tholos.crypto.seal): round trip, and every tampering, wrong recipient,
request digest or sender refused."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tholos.crypto.errors import InvalidInput
from tholos.crypto.seal import OVERHEAD, SealError, open_sealed, public_bytes, seal

DIGEST = bytes(range(32))


@pytest.mark.parametrize("size", [0, 1, 700])
def test_round_trip_and_fresh_ephemeral_key(size: int) -> None:
    key = X25519PrivateKey.generate()
    msg = os.urandom(size)
    a = seal(public_bytes(key), DIGEST, 3, msg)
    b = seal(public_bytes(key), DIGEST, 3, msg)
    assert len(a) == size + OVERHEAD and a != b and a[:32] != b[:32]
    assert open_sealed(key, DIGEST, 3, a) == msg == open_sealed(key, DIGEST, 3, b)
    if size >= 16:  # shorter messages occur in the random-looking ciphertext by chance
        assert msg not in a


def test_every_tampered_byte_is_refused() -> None:
    key = X25519PrivateKey.generate()
    blob = seal(public_bytes(key), DIGEST, 2, b"partial evaluation and proof")
    for i in range(len(blob)):
        for flip in (0x01, 0x80):
            bad = bytearray(blob)
            bad[i] ^= flip
            with pytest.raises(SealError):
                open_sealed(key, DIGEST, 2, bytes(bad))
    for cut in (0, 31, OVERHEAD - 1, len(blob) - 1):
        with pytest.raises(SealError):
            open_sealed(key, DIGEST, 2, blob[:cut])
    with pytest.raises(SealError):
        open_sealed(key, DIGEST, 2, blob + b"\x00")


def test_wrong_recipient_digest_or_sender_is_refused() -> None:
    key = X25519PrivateKey.generate()
    blob = seal(public_bytes(key), DIGEST, 2, b"secret")
    with pytest.raises(SealError):
        open_sealed(X25519PrivateKey.generate(), DIGEST, 2, blob)
    with pytest.raises(SealError):
        open_sealed(key, bytes(32), 2, blob)
    with pytest.raises(SealError):
        open_sealed(key, DIGEST, 3, blob)
    assert open_sealed(key, DIGEST, 2, blob) == b"secret"


def test_malformed_or_low_order_recipient_keys_are_refused() -> None:
    with pytest.raises(InvalidInput):
        seal(b"\x01" * 31, DIGEST, 1, b"x")
    with pytest.raises(InvalidInput):
        seal(bytes(32), DIGEST, 1, b"x")  # the point of order 1 (u = 0): an all-zero secret
