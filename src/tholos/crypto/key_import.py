"""Import an existing private key by splitting it into threshold shares (trusted-dealer keygen).

This is the one place in tholos that ever holds a whole private key. It runs in the key ceremony,
produces one `KeyShare` per participant (each then sealed by its node), and drops every reference to
the secret it made (`SecretScalar.wipe`; `bytearray` inputs are zeroed in place). Python cannot
promise that no copy survives in memory (see tholos.crypto.secret): run the import in a short-lived
process and discard it.

Accepted inputs
- secp256k1: 32-byte big-endian scalar in [1, n-1] (hex string, bytes or bytearray); or a BIP32
  extended private key `xprv...` / `tprv...` (Base58Check parsed here; only the key and its
  metadata are taken, the chain code is returned so BIP32 public derivation keeps working).
- Ed25519: the RFC 8032 32-byte *seed* (what wallets and libsodium call the private key). The
  signing scalar is s = clamp(SHA-512(seed)[0:32]) read little-endian, reduced mod L (the same public
  key A = s·B, since B has order L). The second half of the hash (the RFC 8032 nonce prefix) is
  discarded: FROST uses fresh random nonces, and its signatures verify under A as ordinary Ed25519
  signatures. The reduction and the loss of the prefix mean the shares cannot be turned back into
  the seed; export of the original seed is intentionally impossible.
- BLS12-381 (`import_scalar(BLS12_381_G1, ...)`): the 32-byte big-endian secret key in [1, r-1]
  (IETF BLS / EIP-2333 serialization, what Ethereum keystores hold); public key sk·G1.
- DiSE (`import_scalar(ED25519, ..., "little")`): the DPRF key as a canonical 32-byte
  little-endian edwards25519 scalar in [1, L-1] (libsodium's scalar encoding).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from tholos.crypto.bip32 import TPRV, XPRV, ExtendedPublicKey, parse_extended_key
from tholos.crypto.errors import InvalidInput
from tholos.crypto.groups import ED25519, SECP256K1, Group
from tholos.crypto.hazmat.dealer import deal_key_shares
from tholos.crypto.keys import KeyShare, PublicKeyPackage
from tholos.crypto.secret import SecretScalar

__all__ = [
    "ImportedKey",
    "ed25519_seed_to_scalar",
    "import_key",
    "import_xprv",
]

E = TypeVar("E")


@dataclass(frozen=True, repr=False)
class ImportedKey(Generic[E]):
    """Per-participant shares of an imported key; `xpub` is set when it came from an xprv."""

    shares: dict[int, KeyShare[E]]
    public: PublicKeyPackage[E]
    xpub: ExtendedPublicKey | None = None

    @property
    def chain_code(self) -> bytes | None:
        return None if self.xpub is None else self.xpub.chain_code

    def __repr__(self) -> str:
        return (
            f"ImportedKey(group={self.public.group.name}, threshold={self.public.threshold}, "
            f"participants={self.public.identifiers}, shares=<redacted>)"
        )


def _raw_bytes(key: str | bytes | bytearray, what: str) -> bytes:
    if isinstance(key, str):
        text = key.strip()
        if text.startswith(("0x", "0X")):
            text = text[2:]
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise InvalidInput(f"{what}: not a hex string") from None
    elif isinstance(key, bytes | bytearray):
        raw = bytes(key)
    else:
        raise InvalidInput(f"{what}: expected hex str, bytes or bytearray")
    if len(raw) != 32:
        raise InvalidInput(f"{what}: must be 32 bytes, got {len(raw)}")
    return raw


def ed25519_seed_to_scalar(seed: bytes) -> int:
    """RFC 8032 section 5.1.5 steps 1-3: s = clamp(SHA-512(seed)[:32]) little-endian, mod L."""
    if len(seed) != 32:
        raise InvalidInput("Ed25519 seed must be 32 bytes")
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    s = int.from_bytes(h, "little") % ED25519.order
    h[:] = bytes(32)
    return s


def _split(
    group: Group[E], secret: SecretScalar, threshold: int, participants: Sequence[int]
) -> tuple[dict[int, KeyShare[E]], PublicKeyPackage[E]]:
    shares = deal_key_shares(group, secret.expose(), threshold, participants)
    public = shares[0].public
    public.check_consistent()
    return {ks.identifier: ks for ks in shares}, public


def import_key(
    group: Group[E],
    private_key: str | bytes | bytearray,
    threshold: int,
    participants: Sequence[int],
) -> ImportedKey[E]:
    """Split a private key (see the module docstring for formats) into `threshold`-of-n shares.

    A string starting with "xprv"/"tprv" is parsed as a BIP32 extended private key (secp256k1).
    """
    if isinstance(private_key, str) and private_key.strip().startswith(("xprv", "tprv")):
        if group is not SECP256K1:
            raise InvalidInput("an xprv is a secp256k1 key")
        return import_xprv(private_key, threshold, participants)
    target: Group[E] = group  # not narrowed by the `is` tests below
    secret: SecretScalar | None = None
    try:
        if group is SECP256K1:
            raw = _raw_bytes(private_key, "secp256k1 private key")
            k = int.from_bytes(raw, "big")
            if not 0 < k < SECP256K1.order:
                raise InvalidInput("secp256k1 private key must be in [1, n-1]")
            secret = SecretScalar(k)
        elif group is ED25519:
            raw = _raw_bytes(private_key, "Ed25519 seed")
            k = ed25519_seed_to_scalar(raw)
            if k == 0:
                raise InvalidInput("Ed25519 seed gives a zero scalar")
            secret = SecretScalar(k)
        else:
            raise InvalidInput(f"key import is not defined for group {group.name}")
        k = 0
        raw = b""
        shares, public = _split(target, secret, threshold, participants)
        return ImportedKey(shares=shares, public=public)
    finally:
        if secret is not None:
            secret.wipe()
        if isinstance(private_key, bytearray):
            private_key[:] = bytes(len(private_key))


def import_scalar(
    group: Group[E],
    private_key: str | bytes | bytearray,
    threshold: int,
    participants: Sequence[int],
    byteorder: Literal["big", "little"] = "big",
) -> ImportedKey[E]:
    """Split a raw 32-byte scalar of `group` (BLS secret key, DiSE DPRF key); a value outside
    [1, order-1] is refused, never reduced."""
    raw = _raw_bytes(private_key, f"{group.name} secret key")
    k = int.from_bytes(raw, byteorder)
    if not 0 < k < group.order:
        raise InvalidInput(
            f"{group.name} secret key must be a {byteorder}-endian scalar in [1, order-1]"
        )
    secret = SecretScalar(k)
    k = 0
    try:
        shares, public = _split(group, secret, threshold, participants)
        return ImportedKey(shares=shares, public=public)
    finally:
        secret.wipe()
        if isinstance(private_key, bytearray):
            private_key[:] = bytes(len(private_key))


def import_xprv(xprv: str, threshold: int, participants: Sequence[int]) -> ImportedKey[Any]:
    """Split the key of a BIP32 xprv; the result's `xpub` reproduces the xprv's public twin."""
    meta, key = parse_extended_key(xprv.strip(), (XPRV, TPRV), "xprv")
    secret: SecretScalar | None = None
    try:
        if key[0] != 0:
            raise InvalidInput("xprv: key data must be 0x00 || 32-byte key")
        k = int.from_bytes(key[1:], "big")
        if not 0 < k < SECP256K1.order:
            raise InvalidInput("xprv: private key out of range")
        secret = SecretScalar(k)
        k = 0
        secp: Group[Any] = SECP256K1
        shares, public = _split(secp, secret, threshold, participants)
        node = ExtendedPublicKey(public_key=public.group_public_key, **meta)
        return ImportedKey(shares=shares, public=public, xpub=node)
    finally:
        if secret is not None:
            secret.wipe()
        key = b""
