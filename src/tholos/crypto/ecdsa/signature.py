"""Plain ECDSA over secp256k1: the signature type, low-S normalisation, recovery id, verification.

These functions know nothing about thresholds; the combiner uses them to finish a signature, and
tests run them on the RFC 6979 community vectors. Messages are 32-byte digests (the caller hashes:
SHA-256d for Bitcoin, Keccak-256 for Ethereum); e = int(digest) as in SEC 1 section 4.1.3 (n is 256
bits, so no truncation is needed).

Verification uses libsecp256k1 (coincurve), which accepts only low-S signatures (BIP 62/146,
EIP-2): `EcdsaSignature.normalized()` maps s to n - s and flips the recovery id's parity bit.
"""

from __future__ import annotations

from dataclasses import dataclass

from coincurve import PublicKey
from coincurve.ecdsa import cdata_to_der, recoverable_convert
from coincurve.ecdsa import deserialize_recoverable as _deserialize_recoverable

from tholos.crypto.errors import InvalidElement, InvalidInput, InvalidSignature
from tholos.crypto.groups.secp256k1 import SECP256K1, N

HALF_N = N // 2


def _digest(msg_hash: bytes) -> bytes:
    if not isinstance(msg_hash, bytes | bytearray) or len(msg_hash) != 32:
        raise InvalidInput("ECDSA signs a 32-byte message digest")
    return bytes(msg_hash)


@dataclass(frozen=True)
class EcdsaSignature:
    """(r, s) with the recovery id v in 0..3 (bit 0: R.y odd, bit 1: R.x >= n)."""

    r: int
    s: int
    recovery_id: int

    def __post_init__(self) -> None:
        if not (0 < self.r < N and 0 < self.s < N and self.recovery_id in (0, 1, 2, 3)):
            raise InvalidInput("ECDSA signature values out of range")

    @property
    def is_low_s(self) -> bool:
        return self.s <= HALF_N

    def normalized(self) -> EcdsaSignature:
        """The low-S form: s -> n - s negates R, so the parity bit of the recovery id flips."""
        if self.is_low_s:
            return self
        return EcdsaSignature(self.r, N - self.s, self.recovery_id ^ 1)

    def to_compact(self) -> bytes:
        """64 bytes r || s."""
        return self.r.to_bytes(32, "big") + self.s.to_bytes(32, "big")

    def to_recoverable(self) -> bytes:
        """65 bytes r || s || v with v in 0..3 (libsecp256k1's recoverable form)."""
        return self.to_compact() + bytes([self.recovery_id])

    def to_eth_bytes(self) -> bytes:
        """65 bytes r || s || v with v = 27 + recovery id (eth_sign / personal_sign style). Typed
        transactions carry the bare y-parity instead: use `recovery_id` (always 0 or 1 for
        Ethereum, where R.x >= n is rejected)."""
        if self.recovery_id > 1:
            raise InvalidInput("Ethereum cannot express a recovery id above 1")
        return self.to_compact() + bytes([27 + self.recovery_id])

    def to_der(self) -> bytes:
        return bytes(
            cdata_to_der(recoverable_convert(_deserialize_recoverable(self.to_recoverable())))
        )

    @classmethod
    def from_recoverable(cls, data: bytes) -> EcdsaSignature:
        if not isinstance(data, bytes | bytearray) or len(data) != 65:
            raise InvalidInput("recoverable signature must be 65 bytes")
        v = data[64]
        if v >= 27:
            v -= 27
        return cls(int.from_bytes(data[:32], "big"), int.from_bytes(data[32:64], "big"), v)


def recovery_id_for(nonce_point: PublicKey) -> int:
    """Recovery id of an (un-normalised) signature whose nonce point is R."""
    enc = nonce_point.format(compressed=True)
    x = int.from_bytes(enc[1:], "big")
    return (enc[0] & 1) | (2 if x >= N else 0)


def verify(public_key: PublicKey | bytes, msg_hash: bytes, signature: EcdsaSignature) -> None:
    """Verify with libsecp256k1 (low-S only, as Bitcoin and Ethereum require); raises
    InvalidSignature. The recovery id is checked too: it must recover the same key."""
    digest = _digest(msg_hash)
    key = (
        SECP256K1.deserialize_element(bytes(public_key))
        if isinstance(public_key, bytes | bytearray)
        else public_key
    )
    if not isinstance(key, PublicKey):
        raise InvalidElement("public key must be a secp256k1 point")
    if not signature.is_low_s:
        raise InvalidSignature("high-S ECDSA signature (normalise it first)")
    if not key.verify(signature.to_der(), digest, hasher=None):
        raise InvalidSignature("ECDSA signature does not verify")
    if recover(digest, signature).format() != key.format():
        raise InvalidSignature("ECDSA recovery id does not recover the public key")


def recover(msg_hash: bytes, signature: EcdsaSignature) -> PublicKey:
    """The public key recovered from a signature and its recovery id; raises InvalidSignature."""
    try:
        return PublicKey.from_signature_and_message(
            signature.to_recoverable(), _digest(msg_hash), hasher=None
        )
    except ValueError:
        raise InvalidSignature("no public key recovers from this signature") from None


def finish_signature(
    nonce_point: PublicKey, s: int, public_key: PublicKey, msg_hash: bytes
) -> EcdsaSignature:
    """(r, s) from the nonce point R and s, low-S normalised with its recovery id, verified."""
    enc = nonce_point.format(compressed=True)
    r = int.from_bytes(enc[1:], "big") % N
    sig = EcdsaSignature(r, s % N, recovery_id_for(nonce_point)).normalized()
    verify(public_key, msg_hash, sig)
    return sig
