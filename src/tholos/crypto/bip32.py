"""BIP32 non-hardened (public) derivation on threshold secp256k1 keys.

Reference: BIP32, "Public parent key -> public child key" (CKDpub) and "Serialization format".
https://github.com/bitcoin/bips/blob/master/bip-0032.mediawiki

From the group public key K and chain code c, CKDpub gives I = HMAC-SHA512(c, serP(K) || ser32(i)),
K_i = parse256(I_L)·G + K, c_i = I_R. Along a path the child key is K + (Σ I_L)·G, so the threshold
holders sign for the child with `KeyShare.tweaked(tweak)` (adding a constant to every share adds it
to the shared secret). Hardened derivation needs the private key, which never exists in one place:
it is refused with `HardenedDerivationError`.

HASH160 needs RIPEMD-160, which OpenSSL 3 may not provide through hashlib; then embit's pure-Python
RIPEMD-160 (`embit.util.py_ripemd160`, MIT) is used. Base58Check is implemented here over hashlib.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tholos.crypto.errors import InvalidElement, InvalidInput
from tholos.crypto.groups.secp256k1 import SECP256K1, Point
from tholos.crypto.keys import KeyShare, PublicKeyPackage

__all__ = [
    "HARDENED",
    "DerivedKey",
    "ExtendedPublicKey",
    "HardenedDerivationError",
    "base58check_decode",
    "base58check_encode",
    "derive",
    "derive_key_share",
    "hash160",
    "parse_extended_key",
    "parse_path",
]

HARDENED = 0x80000000
XPUB = bytes.fromhex("0488B21E")
TPUB = bytes.fromhex("043587CF")
XPRV = bytes.fromhex("0488ADE4")
TPRV = bytes.fromhex("04358394")
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class HardenedDerivationError(InvalidInput):
    """Hardened derivation needs the whole private key, which a threshold key never has."""


def _load_ripemd160() -> Callable[[bytes], bytes]:
    try:
        hashlib.new("ripemd160")

        def ripemd160(data: bytes) -> bytes:
            return hashlib.new("ripemd160", data).digest()

        return ripemd160
    except ValueError:  # pragma: no cover - depends on the OpenSSL build
        from embit.util.py_ripemd160 import ripemd160 as py_ripemd160

        return py_ripemd160  # type: ignore[no-any-return]


_ripemd160 = _load_ripemd160()


def hash160(data: bytes) -> bytes:
    """RIPEMD-160(SHA-256(data))."""
    return _ripemd160(hashlib.sha256(data).digest())


def base58check_encode(payload: bytes) -> str:
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\x00"))
    return "1" * pad + "".join(reversed(out))


def base58check_decode(s: str) -> bytes:
    """Decode and verify the 4-byte double-SHA-256 checksum; raises InvalidInput."""
    if not isinstance(s, str) or not s:
        raise InvalidInput("base58check: expected a non-empty string")
    n = 0
    for ch in s:
        idx = _B58.find(ch)
        if idx < 0:
            raise InvalidInput("base58check: invalid character")
        n = n * 58 + idx
    pad = len(s) - len(s.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    data = b"\x00" * pad + body
    if len(data) < 5:
        raise InvalidInput("base58check: too short")
    payload, checksum = data[:-4], data[-4:]
    if hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != checksum:
        raise InvalidInput("base58check: bad checksum")
    return payload


def parse_extended_key(
    encoded: str, versions: tuple[bytes, bytes], what: str
) -> tuple[dict[str, Any], bytes]:
    """Decode a BIP32 serialized key whose version is `versions` = (mainnet, testnet): the metadata
    (keyword arguments of ExtendedPublicKey other than public_key) and the 33-byte key data."""
    data = base58check_decode(encoded)
    if len(data) != 78:
        raise InvalidInput(f"{what}: payload must be 78 bytes")
    if data[:4] not in versions:
        raise InvalidInput(f"{what}: wrong version bytes")
    depth, fingerprint, child_number = data[4], data[5:9], int.from_bytes(data[9:13], "big")
    if depth == 0 and (fingerprint != b"\x00" * 4 or child_number != 0):
        raise InvalidInput(f"{what}: depth 0 with a parent fingerprint or child number")
    meta = {
        "chain_code": data[13:45],
        "depth": depth,
        "parent_fingerprint": fingerprint,
        "child_number": child_number,
        "testnet": data[:4] == versions[1],
    }
    return meta, data[45:78]


def parse_path(path: str | Sequence[int]) -> tuple[int, ...]:
    """'m/0/7/42' (or '0/7/42', or a sequence of ints) -> (0, 7, 42); hardened steps are refused."""
    if isinstance(path, str):
        parts = [p for p in path.strip().split("/")]
        if parts and parts[0] in ("m", "M"):
            parts = parts[1:]
        indices: list[int] = []
        for p in parts:
            if p.endswith(("'", "h", "H")):
                raise HardenedDerivationError(
                    f"hardened step {p!r}: hardened derivation needs the private key; derive it "
                    "before import (import the hardened xprv) or use non-hardened paths"
                )
            if not (p.isascii() and p.isdigit()):  # str.isdigit alone admits "١" and "²"
                raise InvalidInput(f"bad derivation path component {p!r}")
            indices.append(int(p))
    else:
        indices = list(path)
    for i in indices:
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            raise InvalidInput(f"bad child index {i!r}")
        if i >= HARDENED:
            raise HardenedDerivationError(
                f"child index {i} is hardened (>= 2^31); threshold keys derive only non-hardened"
            )
    return tuple(indices)


@dataclass(frozen=True)
class ExtendedPublicKey:
    """A BIP32 extended public key (the public node; no private part ever exists in tholos)."""

    public_key: Point
    chain_code: bytes
    depth: int = 0
    parent_fingerprint: bytes = b"\x00\x00\x00\x00"
    child_number: int = 0
    testnet: bool = False

    def __post_init__(self) -> None:
        if self.public_key is None:
            raise InvalidElement("extended key: the identity is not a public key")
        if len(self.chain_code) != 32:
            raise InvalidInput("extended key: chain code must be 32 bytes")
        if not 0 <= self.depth <= 255:
            raise InvalidInput("extended key: depth must fit one byte")
        if len(self.parent_fingerprint) != 4:
            raise InvalidInput("extended key: parent fingerprint must be 4 bytes")
        if not 0 <= self.child_number < 2**32:
            raise InvalidInput("extended key: child number must fit 4 bytes")

    @property
    def key_bytes(self) -> bytes:
        """serP(K): 33-byte compressed SEC1."""
        return SECP256K1.serialize_element(self.public_key)

    @property
    def fingerprint(self) -> bytes:
        return hash160(self.key_bytes)[:4]

    def to_xpub(self) -> str:
        return base58check_encode(
            (TPUB if self.testnet else XPUB)
            + bytes([self.depth])
            + self.parent_fingerprint
            + self.child_number.to_bytes(4, "big")
            + self.chain_code
            + self.key_bytes
        )

    @classmethod
    def from_xpub(cls, xpub: str) -> ExtendedPublicKey:
        meta, key = parse_extended_key(xpub, (XPUB, TPUB), "xpub")
        return cls(public_key=SECP256K1.deserialize_element(key), **meta)

    @classmethod
    def from_public_package(
        cls, public: PublicKeyPackage[Any], chain_code: bytes, **meta: Any
    ) -> ExtendedPublicKey:
        if public.group is not SECP256K1:
            raise InvalidInput("BIP32 derivation is defined for secp256k1 keys only")
        return cls(public_key=public.group_public_key, chain_code=chain_code, **meta)

    def child(self, index: int) -> tuple[ExtendedPublicKey, int]:
        """CKDpub: (child node, I_L), the child key being K + I_L·G."""
        parse_path([index])
        if self.depth == 255:
            raise InvalidInput("extended key: maximum depth reached")
        i = hmac.new(
            self.chain_code, self.key_bytes + index.to_bytes(4, "big"), hashlib.sha512
        ).digest()
        il = int.from_bytes(i[:32], "big")
        if il >= SECP256K1.order:
            raise InvalidInput(f"BIP32: index {index} gives an invalid key; use the next index")
        child_key = SECP256K1.add(SECP256K1.base_mul(il), self.public_key)
        if child_key is None:
            raise InvalidInput(
                f"BIP32: index {index} gives the point at infinity; use the next index"
            )
        node = ExtendedPublicKey(
            public_key=child_key,
            chain_code=i[32:],
            depth=self.depth + 1,
            parent_fingerprint=self.fingerprint,
            child_number=index,
            testnet=self.testnet,
        )
        return node, il


@dataclass(frozen=True)
class DerivedKey:
    """A child node and the tweak that turns the root key into it (child = root + tweak·G)."""

    node: ExtendedPublicKey
    tweak: int
    path: tuple[int, ...]

    @property
    def xpub(self) -> str:
        return self.node.to_xpub()

    @property
    def public_key(self) -> Point:
        return self.node.public_key

    def public_package(self, root: PublicKeyPackage[Point]) -> PublicKeyPackage[Point]:
        """The child's public package (group key and verifying shares all shifted by tweak·G)."""
        return root.tweaked(self.tweak)


def derive(root: ExtendedPublicKey, path: str | Sequence[int]) -> DerivedKey:
    """Derive along a non-hardened path from the public side only."""
    indices = parse_path(path)
    node = root
    tweak = 0
    for index in indices:
        node, il = node.child(index)
        tweak = (tweak + il) % SECP256K1.order
    return DerivedKey(node=node, tweak=tweak, path=indices)


def derive_key_share(
    share: KeyShare[Point], root: ExtendedPublicKey, path: str | Sequence[int]
) -> KeyShare[Point]:
    """This holder's share of the child key at `path` (root must be the share's group key)."""
    if share.group is not SECP256K1:
        raise InvalidInput("BIP32 derivation is defined for secp256k1 keys only")
    if not SECP256K1.eq(share.public.group_public_key, root.public_key):
        raise InvalidInput("the extended key is not this key share's group key")
    derived = derive(root, path)
    return share.tweaked(derived.tweak)
