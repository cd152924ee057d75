"""The RFC 9591 ciphersuites tholos supports: a few lines of configuration each.

- FROST(Ed25519, SHA-512), RFC 9591 section 6.1, contextString "FROST-ED25519-SHA512-v1".
- FROST(secp256k1, SHA-256), RFC 9591 section 6.5, contextString "FROST-secp256k1-SHA256-v1".

The BIP340/Taproot variant is in `bip340.py`.
"""

from __future__ import annotations

import hashlib

from nacl import bindings as sodium
from nacl.exceptions import BadSignatureError
from nacl.exceptions import RuntimeError as SodiumRuntimeError

from tholos.crypto.errors import InvalidSignature
from tholos.crypto.frost.ciphersuite import Ciphersuite, hash_to_field_sha256, register_suite
from tholos.crypto.groups import ED25519, SECP256K1
from tholos.crypto.groups.secp256k1 import Point

_L = ED25519.order
_N = SECP256K1.order


class Ed25519Sha512(Ciphersuite[bytes]):
    """FROST(Ed25519, SHA-512), RFC 9591 section 6.1. Signatures are RFC 8032 Ed25519 signatures."""

    name = "FROST-ED25519-SHA512-v1"
    context_string = b"FROST-ED25519-SHA512-v1"
    group = ED25519
    code = 1
    signature_length = 64
    public_key_length = 32

    def _h(self, tag: bytes, m: bytes) -> int:
        # H(contextString || tag || m), interpreted as a little-endian integer mod L.
        return int.from_bytes(hashlib.sha512(self.context_string + tag + m).digest(), "little") % _L

    def H1(self, m: bytes) -> int:
        return self._h(b"rho", m)

    def H2(self, m: bytes) -> int:
        # RFC 9591 section 6.1: H2 has no prefix, so the challenge is RFC 8032's SHA-512(R || A || M).
        return int.from_bytes(hashlib.sha512(m).digest(), "little") % _L

    def H3(self, m: bytes) -> int:
        return self._h(b"nonce", m)

    def H4(self, m: bytes) -> bytes:
        return hashlib.sha512(self.context_string + b"msg" + m).digest()

    def H5(self, m: bytes) -> bytes:
        return hashlib.sha512(self.context_string + b"com" + m).digest()

    def verify(self, message: bytes, signature: bytes, public_key: bytes) -> None:
        # The key is fully validated (canonical, prime-order subgroup, not the identity). R and z are
        # left to libsodium, which rejects a non-canonical z and accepts R only if it is the canonical
        # encoding of [z]B - [c]A, a point of the prime-order subgroup: the same acceptance set as
        # DeserializeElement(R) followed by the equation, without a second subgroup check.
        self.deserialize_public_key(public_key)
        if not isinstance(signature, bytes | bytearray) or len(signature) != 64:
            raise InvalidSignature(f"{self.name}: signature must be 64 bytes")
        self.verify_elements(message, b"", 0, b"", bytes(signature), bytes(public_key))

    def verify_elements(
        self, message: bytes, r: bytes, z: int, y: bytes, signature: bytes, public_key: bytes
    ) -> None:
        # libsodium's RFC 8032 verifier computes the same challenge and checks
        # [z]B - [c]A == R by encoding. RFC 9591 section 6.1 asks for the cofactored equation; the two
        # agree here because R and A were already checked to lie in the prime-order subgroup
        # (Ed25519Group.deserialize_element), so the multiplication by 8 changes nothing.
        try:
            sodium.crypto_sign_open(signature + message, public_key)
        except (BadSignatureError, SodiumRuntimeError, ValueError):
            raise InvalidSignature(f"{self.name}: signature does not verify") from None


class Secp256k1Sha256(Ciphersuite[Point]):
    """FROST(secp256k1, SHA-256), RFC 9591 section 6.5. H1, H2, H3 are RFC 9380 hash_to_field with
    expand_message_xmd(SHA-256), L = 48; signatures are SerializeElement(R) || SerializeScalar(z)."""

    name = "FROST-secp256k1-SHA256-v1"
    context_string = b"FROST-secp256k1-SHA256-v1"
    group = SECP256K1
    code = 2
    signature_length = 65
    public_key_length = 33

    def __init__(self) -> None:
        super().__init__()
        c = self.context_string
        self._dst_rho, self._dst_chal, self._dst_nonce = c + b"rho", c + b"chal", c + b"nonce"

    def H1(self, m: bytes) -> int:
        return hash_to_field_sha256(m, self._dst_rho, _N)

    def H2(self, m: bytes) -> int:
        return hash_to_field_sha256(m, self._dst_chal, _N)

    def H3(self, m: bytes) -> int:
        return hash_to_field_sha256(m, self._dst_nonce, _N)

    def H4(self, m: bytes) -> bytes:
        return hashlib.sha256(self.context_string + b"msg" + m).digest()

    def H5(self, m: bytes) -> bytes:
        return hashlib.sha256(self.context_string + b"com" + m).digest()


FROST_ED25519_SHA512 = Ed25519Sha512()
FROST_SECP256K1_SHA256 = Secp256k1Sha256()
register_suite(FROST_ED25519_SHA512)
register_suite(FROST_SECP256K1_SHA256)
