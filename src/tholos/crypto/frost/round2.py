"""Round two: signature share generation (RFC 9591 section 5.2).

`sign` consumes the signer's `SigningNonces`: they are wiped before the share is returned, and any
second use raises NonceReuse. It refuses (without consuming) a package whose commitment for this
signer is not the one belonging to the nonces.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from tholos.crypto._wire import unhex
from tholos.crypto.errors import InvalidInput, InvalidParticipants
from tholos.crypto.frost.ciphersuite import (
    FORMAT_VERSION,
    Ciphersuite,
    check_suite,
    parse_compact,
    parse_dict,
)
from tholos.crypto.frost.helpers import lagrange, signing_context
from tholos.crypto.frost.round1 import SigningNonces
from tholos.crypto.frost.signing_package import SigningPackage
from tholos.crypto.keys import KeyShare

E = TypeVar("E")


class SignatureShare(Generic[E]):
    """z_i, one signer's share of the signature (public once sent)."""

    __slots__ = ("share", "suite")

    def __init__(self, suite: Ciphersuite[E], share: int) -> None:
        self.suite = suite
        self.share = suite.group.check_scalar(share)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SignatureShare):
            return NotImplemented
        return self.suite is other.suite and self.share == other.share

    def __hash__(self) -> int:
        return hash((self.suite.name, self.share))

    def __repr__(self) -> str:
        return f"SignatureShare(suite={self.suite.name}, share={self.to_scalar_bytes().hex()})"

    def to_scalar_bytes(self) -> bytes:
        return self.suite.group.serialize_scalar(self.share)

    def to_bytes(self) -> bytes:
        """version (1 byte) || suite code (1 byte) || SerializeScalar(z_i)."""
        return bytes([FORMAT_VERSION, self.suite.code]) + self.to_scalar_bytes()

    @classmethod
    def from_bytes(cls, data: bytes, suite: Ciphersuite[Any] | None = None) -> SignatureShare[Any]:
        s, body = parse_compact(data, suite, "signature share")
        return cls(s, s.group.deserialize_scalar(body))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "suite": self.suite.name,
            "share": self.to_scalar_bytes().hex(),
        }

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], suite: Ciphersuite[Any] | None = None
    ) -> SignatureShare[Any]:
        s, d = parse_dict(d, ("share",), suite, "signature share")
        return cls(s, s.group.deserialize_scalar(unhex(d["share"], "share")))


def sign(
    suite: Ciphersuite[E],
    signing_package: SigningPackage[E],
    nonces: SigningNonces[E],
    key_share: KeyShare[E],
    *,
    tweak: int = 0,
    merkle_root: bytes | None = None,
) -> SignatureShare[E]:
    """RFC 9591 section 5.2: z_i = d_i + e_i·ρ_i + λ_i·s_i·c. Consumes `nonces`.

    `tweak` (an additive scalar, e.g. the sum of BIP32 non-hardened derivation steps) and, for the
    BIP340 suite, `merkle_root` (BIP341: b"" for key-path only, or the 32-byte script tree root)
    select the key the signature will verify under: every share s_i is mapped to ±s_i + offset as
    described in `EffectiveKey`. All signers and the coordinator must pass the same values; they are
    bound into the binding factors through the signing key's encoding.

    Raises InvalidParticipants / InvalidInput for a bad package (nonces are NOT consumed then) and
    NonceReuse if the nonces were used before.
    """
    check_suite(suite, nonces.suite, "signing nonces")
    if key_share.group is not suite.group:
        raise InvalidInput(
            f"key share is over {key_share.group.name}, suite needs {suite.group.name}"
        )
    i = key_share.identifier
    own = signing_package.commitments.get(i)
    if own is None:
        raise InvalidParticipants(f"signer {i} has no commitment in the signing package")
    if own != nonces.commitments:
        raise InvalidInput(f"the package's commitment for signer {i} is not these nonces'")
    d, e = nonces.peek()
    ctx = signing_context(
        suite, signing_package, key_share.public, tweak, merkle_root, own_nonces=(i, d, e)
    )
    q = suite.group.order
    lam = lagrange(signing_package.identifiers, i, q)
    d, e = nonces.consume()
    if ctx.negated:  # BIP340: R had odd Y, so every signer negates its nonces
        d, e = q - d, q - e
    s = ctx.key.map_secret(key_share.secret_share.expose(), q)
    z = (d + e * ctx.binding_factors[i] + lam * s * ctx.challenge) % q
    return SignatureShare(suite, z)
