"""Sealing a node's reply to a client's X25519 key, so that a relay (the gateway) cannot read it.

ECIES-style, one message per ephemeral key, every primitive from `cryptography`:
  e <- X25519 ephemeral;  z = X25519(e, C)  (C: the client's public key)
  key || nonce = HKDF-SHA256(z, salt = None, info = tag || lp(digest) || lp(sender) || E || C)
  blob = E || AES-256-GCM(key, nonce, plaintext, associated data = digest)
`digest` is what the client signed to ask (its authorization digest), `sender` the node id: a blob
opens only for that request, from that node's slot, under that client key. The key is fresh for
every blob (a new ephemeral key), so the derived nonce is never reused.

Sealing gives confidentiality, not authenticity: anyone can seal to C. The client authenticates
the content itself (a DiSE partial carries its Chaum–Pedersen proof against the key's verifying
share).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tholos.crypto.errors import CryptoError, InvalidInput

SEAL_TAG = b"tholos/seal/v1"
PUBLIC_KEY_LENGTH = 32
OVERHEAD = PUBLIC_KEY_LENGTH + 16
_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw


class SealError(CryptoError):
    """A sealed blob that does not open: tampered with, for another request, sender or key."""


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def public_bytes(key: X25519PrivateKey) -> bytes:
    """The raw 32-byte public key of an X25519 private key."""
    return key.public_key().public_bytes(_RAW, _RAW_PUB)


def _key_nonce(
    shared: bytes, digest: bytes, sender: int, eph: bytes, recipient: bytes
) -> tuple[AESGCM, bytes]:
    info = SEAL_TAG + _lp(digest) + _lp(str(sender).encode()) + eph + recipient
    okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=None, info=info).derive(shared)
    return AESGCM(okm[:32]), okm[32:]


def seal(recipient: bytes, digest: bytes, sender: int, plaintext: bytes) -> bytes:
    """Encrypt `plaintext` to the X25519 public key `recipient` (32 bytes), bound to `digest`
    and `sender` (see the module docstring). Raises InvalidInput for a malformed key."""
    if not isinstance(recipient, bytes) or len(recipient) != PUBLIC_KEY_LENGTH:
        raise InvalidInput("the recipient key is 32 bytes (X25519)")
    try:
        peer = X25519PublicKey.from_public_bytes(recipient)
        eph_key = X25519PrivateKey.generate()
        shared = eph_key.exchange(peer)
    except ValueError:  # a low-order point: the shared secret would be all zeros
        raise InvalidInput("the recipient key is not a usable X25519 key") from None
    eph = public_bytes(eph_key)
    aead, nonce = _key_nonce(shared, digest, sender, eph, recipient)
    return eph + aead.encrypt(nonce, plaintext, digest)


def open_sealed(key: X25519PrivateKey, digest: bytes, sender: int, blob: bytes) -> bytes:
    """The plaintext of a blob sealed to `key` for (`digest`, `sender`); SealError otherwise."""
    if not isinstance(blob, bytes) or len(blob) < OVERHEAD:
        raise SealError(f"sealed reply of node {sender} is truncated")
    eph = blob[:PUBLIC_KEY_LENGTH]
    try:
        shared = key.exchange(X25519PublicKey.from_public_bytes(eph))
    except ValueError:
        raise SealError(f"sealed reply of node {sender} has an invalid ephemeral key") from None
    aead, nonce = _key_nonce(shared, digest, sender, eph, public_bytes(key))
    try:
        return aead.decrypt(nonce, blob[PUBLIC_KEY_LENGTH:], digest)
    except InvalidTag:
        raise SealError(f"sealed reply of node {sender} does not open") from None


__all__ = ["SealError", "open_sealed", "public_bytes", "seal"]
