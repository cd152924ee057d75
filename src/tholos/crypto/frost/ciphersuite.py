"""The FROST `Ciphersuite` abstraction (RFC 9591, section 6) and the hash helpers suites are built from.

A ciphersuite is a prime-order group plus the hash functions H1..H5 (RFC 9591, section 6, "Cryptographic
Hash Function"). The protocol (round1, round2, aggregate) is written once against this class; a
concrete suite (`suites.py`, `bip340.py`) is a few lines of configuration.

Two hooks exist only for the BIP340/Taproot variant, and are identities for the RFC suites:
`effective_key` (even-Y normalisation and tweaks of the group key) and `commitment_is_negated`
(even-Y normalisation of the group commitment R).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from tholos.crypto.errors import InvalidInput, InvalidScalar, InvalidSignature
from tholos.crypto.groups.base import Group
from tholos.crypto.hazmat.hash import (  # re-exported: suites and tests import them from here
    expand_message_xmd_sha256,
    hash_to_field_sha256,
    tagged_hash,
)

E = TypeVar("E")
__all__ = [
    "FORMAT_VERSION",
    "Ciphersuite",
    "EffectiveKey",
    "check_suite",
    "expand_message_xmd_sha256",
    "hash_to_field_sha256",
    "parse_compact",
    "parse_dict",
    "register_suite",
    "suite_by_code",
    "suite_by_name",
    "tagged_hash",
]

FORMAT_VERSION = 1
"""Version marker carried by every serialized FROST object (wire and storage)."""


# -- the effective signing key -----------------------------------------------------------------------
@dataclass(frozen=True)
class EffectiveKey(Generic[E]):
    """The key a signature verifies under, derived from the group key Y by an affine map.

    Every secret (the group secret s and each share s_i) is mapped the same way,
    x -> (-x if negate else x) + offset, which is sound for Shamir shares because the Lagrange
    coefficients at 0 sum to 1. `public_key` = (±Y) + offset·G. For RFC suites without a tweak this is
    the identity map.
    """

    public_key: E
    negate: bool
    offset: int
    public_key_enc: bytes = field(repr=False)
    """SerializeElement(public_key): what the binding factors hash (RFC 9591, section 4.4)."""
    public_key_bytes: bytes = field(repr=False)
    """The suite's public-key encoding (x-only for BIP340): what verifiers are given."""

    def map_secret(self, x: int, order: int) -> int:
        return ((-x if self.negate else x) + self.offset) % order


class Ciphersuite(ABC, Generic[E]):
    """A FROST ciphersuite (RFC 9591, section 6): group, context string and H1..H5."""

    name: str
    """The suite identifier, also carried by every serialized object ({version, suite})."""
    context_string: bytes
    group: Group[E]
    code: int
    """One-byte tag used by the compact `to_bytes` forms."""
    signature_length: int
    public_key_length: int

    def __init__(self) -> None:
        self._key_cache: OrderedDict[tuple[bytes, int, bytes | None], EffectiveKey[E]] = (
            OrderedDict()
        )

    # -- RFC 9591 section 6 hash functions -------------------------------------------------------
    @abstractmethod
    def H1(self, m: bytes) -> int:
        """Binding factor hash ("rho")."""

    @abstractmethod
    def H2(self, m: bytes) -> int:
        """Challenge hash ("chal")."""

    @abstractmethod
    def H3(self, m: bytes) -> int:
        """Nonce derivation hash ("nonce")."""

    @abstractmethod
    def H4(self, m: bytes) -> bytes:
        """Message hash ("msg")."""

    @abstractmethod
    def H5(self, m: bytes) -> bytes:
        """Commitment list hash ("com")."""

    # -- RFC 9591 section 4.6 ----------------------------------------------------------------------
    def challenge(self, group_commitment: E, key: EffectiveKey[E], message: bytes) -> int:
        """compute_challenge: H2(SerializeElement(R) || SerializeElement(PK) || msg)."""
        g = self.group
        return self.H2(g.serialize_element(group_commitment) + key.public_key_enc + message)

    # -- BIP340 hooks (identities for RFC 9591 suites) --------------------------------------------
    def commitment_is_negated(self, group_commitment: E) -> bool:
        """Whether signers negate their nonces (and verifiers the commitment) for this R."""
        return False

    def _derive_key(
        self, group_public_key: E, tweak: int, merkle_root: bytes | None
    ) -> EffectiveKey[E]:
        if merkle_root is not None:
            raise InvalidInput(f"{self.name}: a taproot merkle root needs the BIP340 suite")
        g = self.group
        y = g.add(group_public_key, g.base_mul(tweak)) if tweak else group_public_key
        if g.is_identity(y):
            raise InvalidInput("tweaked group key is the identity")
        enc = g.serialize_element(y)
        return EffectiveKey(y, False, tweak, enc, self.serialize_public_key(y))

    def effective_key(
        self, group_public_key: E, tweak: int = 0, merkle_root: bytes | None = None
    ) -> EffectiveKey[E]:
        """The key signatures verify under, after an additive `tweak` (e.g. BIP32 non-hardened
        derivation) and, for BIP340, even-Y normalisation and a BIP341 taproot tweak.

        Tweaked keys are cached (public data, bounded size) so repeated signing with a derived key
        does not repeat the point arithmetic."""
        if (
            isinstance(tweak, bool)
            or not isinstance(tweak, int)
            or not 0 <= tweak < self.group.order
        ):
            raise InvalidScalar("tweak must be an int in [0, order)")
        if merkle_root is not None and (
            not isinstance(merkle_root, bytes) or len(merkle_root) not in (0, 32)
        ):
            raise InvalidInput("taproot merkle root must be b'' or 32 bytes")
        if not tweak and merkle_root is None and not self._needs_key_normalisation:
            g = self.group
            return EffectiveKey(
                group_public_key,
                False,
                0,
                g.serialize_element(group_public_key),
                self.serialize_public_key(group_public_key),
            )
        ck = (self.group.serialize_element(group_public_key), tweak, merkle_root)
        key = self._key_cache.get(ck)
        if key is None:
            key = self._derive_key(group_public_key, tweak, merkle_root)
            self._key_cache[ck] = key
            if len(self._key_cache) > 4096:
                self._key_cache.popitem(last=False)
        return key

    _needs_key_normalisation = False

    # -- encodings ----------------------------------------------------------------------------------
    def serialize_public_key(self, y: E) -> bytes:
        return self.group.serialize_element(y)

    def deserialize_public_key(self, data: bytes) -> E:
        return self.group.deserialize_element(data)

    def serialize_signature(self, group_commitment: E, z: int) -> bytes:
        """RFC 9591 section 6: SerializeElement(R) || SerializeScalar(z)."""
        return self.group.serialize_element(group_commitment) + self.group.serialize_scalar(z)

    def deserialize_signature(self, signature: bytes) -> tuple[E, int]:
        """Parse (R, z); raises InvalidSignature on any malformation."""
        g = self.group
        if not isinstance(signature, bytes | bytearray) or len(signature) != self.signature_length:
            raise InvalidSignature(f"{self.name}: signature must be {self.signature_length} bytes")
        n = g.element_length
        try:
            return g.deserialize_element(bytes(signature[:n])), g.deserialize_scalar(
                bytes(signature[n:])
            )
        except InvalidInput:
            raise InvalidSignature(f"{self.name}: malformed signature") from None

    # -- verification -------------------------------------------------------------------------------
    def verify(self, message: bytes, signature: bytes, public_key: bytes) -> None:
        """Verify a (threshold or single-party) signature; raises InvalidSignature.

        `public_key` is the suite's encoding (see `serialize_public_key`); a malformed key raises
        InvalidElement."""
        y = self.deserialize_public_key(public_key)
        r, z = self.deserialize_signature(signature)
        self.verify_elements(message, r, z, y, bytes(signature), bytes(public_key))

    def verify_elements(
        self, message: bytes, r: E, z: int, y: E, signature: bytes, public_key: bytes
    ) -> None:
        """Check z·G == R + c·Y with validated elements (RFC 9591 section 6 / appendix B).

        Suites may override with a native verifier over (`signature`, `public_key`), which are the
        encodings of (R, z) and Y."""
        g = self.group
        key = EffectiveKey(y, False, 0, g.serialize_element(y), public_key)
        c = self.challenge(r, key, message)
        if not g.eq(g.base_mul(z), g.add(r, g.mul(y, c))):
            raise InvalidSignature(f"{self.name}: signature does not verify")

    def __repr__(self) -> str:
        return f"<Ciphersuite {self.name}>"


# -- registry ------------------------------------------------------------------------------------------
_BY_NAME: dict[str, Ciphersuite[Any]] = {}
_BY_CODE: dict[int, Ciphersuite[Any]] = {}


def register_suite(suite: Ciphersuite[Any]) -> None:
    _BY_NAME[suite.name] = suite
    _BY_CODE[suite.code] = suite


def suite_by_name(name: object) -> Ciphersuite[Any]:
    s = _BY_NAME.get(name) if isinstance(name, str) else None
    if s is None:
        raise InvalidInput(f"unknown FROST ciphersuite {name!r}")
    return s


def suite_by_code(code: int) -> Ciphersuite[Any]:
    s = _BY_CODE.get(code)
    if s is None:
        raise InvalidInput(f"unknown FROST ciphersuite code {code}")
    return s


def check_suite(expected: Ciphersuite[Any], got: Ciphersuite[Any], what: str) -> None:
    if expected is not got:
        raise InvalidInput(f"{what} belongs to suite {got.name}, expected {expected.name}")


def parse_compact(
    data: object, suite: Ciphersuite[Any] | None, what: str
) -> tuple[Ciphersuite[Any], bytes]:
    """Split a compact form, version (1 byte) || suite code (1 byte) || body, into (suite, body);
    with `suite` given, the form must be of that suite."""
    if not isinstance(data, bytes | bytearray) or len(data) < 2:
        raise InvalidInput(f"{what}: too short")
    if data[0] != FORMAT_VERSION:
        raise InvalidInput(f"{what}: unsupported version {data[0]}")
    s = suite_by_code(data[1])
    if suite is not None:
        check_suite(suite, s, what)
    return s, bytes(data[2:])


def parse_dict(
    d: object, fields: tuple[str, ...], suite: Ciphersuite[Any] | None, what: str
) -> tuple[Ciphersuite[Any], dict[str, Any]]:
    """Check a dict form has exactly {version, suite, *fields} and a supported version; return its
    suite (which must be `suite` when given) and the dict."""
    keys = ("version", "suite", *fields)
    if not isinstance(d, dict) or set(d) != set(keys):
        raise InvalidInput(f"{what}: expected keys {', '.join(keys)}")
    if d["version"] != FORMAT_VERSION:
        raise InvalidInput(f"{what}: unsupported version {d['version']!r}")
    s = suite_by_name(d["suite"])
    if suite is not None:
        check_suite(suite, s, what)
    return s, d
