"""Threshold BLS (min-pk, Ethereum POP ciphersuite) over Shamir shares of the key.

A key s is shared with threshold t among nodes; node i holds s_i and everyone knows the verifying
shares Y_i = s_i·G1 (`PublicKeyPackage` over `BLS12_381_G1`, e.g. from the generic DKG).

- Partial signature (one round, no nonces, deterministic): σ_i = s_i·H(m), H = hash_to_curve G2
  with the ciphersuite's DST (Boldyreva, PKC 2003, "Threshold signatures, multisignatures and blind
  signatures based on the gap-Diffie-Hellman-group signature scheme", section 3).
- Partial verification: e(Y_i, H(m)) == e(G1, σ_i); a failure names node i
  (`InvalidSignatureShare`).
- Combination: σ = Σ λ_i·σ_i over any t valid partials (Lagrange at 0, in G2). σ = s·H(m) is an
  ordinary BLS signature under the group key Y = s·G1: verifiers see nothing threshold-specific.

Optimistic combination (documented choice): partial checks cost two Miller loops each, so
`combine` first interpolates t partials and verifies the *final* signature once; only if that
fails does it check partials one by one to name the culprits. On the honest path this is one
verification instead of t. Partials beyond the first t are then not looked at.

Threshold proof of possession: the group key's POP is a threshold signature over the 48-byte group
public key under the POP DST (`purpose="pop"`), so a DKG-generated validator key can register on
Ethereum without ever existing in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pyblst import BlstP1Element, BlstP2Element

from tholos.crypto import _wire
from tholos.crypto.bls.basic import POP_DST, SIG_DST, core_verify_points, hash_to_g2
from tholos.crypto.errors import (
    InvalidInput,
    InvalidParticipants,
    InvalidSignatureShare,
)
from tholos.crypto.groups.bls12381 import BLS12_381_G1, BLS12_381_G2
from tholos.crypto.hazmat.shamir import lagrange_coefficients
from tholos.crypto.keys import KeyShare, PublicKeyPackage

SCHEME = "bls12381-minpk-pop"
Purpose = Literal["signature", "pop"]
_DST: dict[str, bytes] = {"signature": SIG_DST, "pop": POP_DST}


def _check_package(public: PublicKeyPackage[Any]) -> PublicKeyPackage[BlstP1Element]:
    if public.group is not BLS12_381_G1:
        raise InvalidInput(f"BLS needs a key over {BLS12_381_G1.name}, not {public.group.name}")
    return public


def _dst(purpose: str) -> bytes:
    try:
        return _DST[purpose]
    except KeyError:
        raise InvalidInput(f"unknown BLS purpose {purpose!r}") from None


def public_key_bytes(public: PublicKeyPackage[Any]) -> bytes:
    """The 48-byte compressed group public key."""
    return BLS12_381_G1.serialize_element(_check_package(public).group_public_key)


def _signed_message(public: PublicKeyPackage[Any], message: bytes, purpose: str) -> bytes:
    # A POP signs the group public key itself (PopProve), whatever message was passed.
    return public_key_bytes(public) if purpose == "pop" else bytes(message)


@dataclass(frozen=True)
class PartialSignature:
    """σ_i = s_i·H(m) from node `identifier`. Public: safe to log and send."""

    identifier: int
    signature: BlstP2Element
    purpose: Purpose = "signature"

    KIND = "bls_partial_signature"

    def to_dict(self) -> dict[str, Any]:
        return {
            **_wire.header(SCHEME, self.KIND),
            "identifier": self.identifier,
            "purpose": self.purpose,
            "signature": BLS12_381_G2.serialize_element(self.signature).hex(),
        }

    @classmethod
    def from_dict(cls, d: Any) -> PartialSignature:
        with _wire.parse_guard(cls.KIND):
            _wire.check_message(d, SCHEME, cls.KIND, ["identifier", "purpose", "signature"])
            purpose = _wire.get_str(d, "purpose")
            _dst(purpose)
            return cls(
                identifier=_wire.get_int(d, "identifier", minimum=1),
                signature=_wire.get_element(BLS12_381_G2, d, "signature"),
                purpose="pop" if purpose == "pop" else "signature",
            )


def sign_share(
    key_share: KeyShare[Any], message: bytes, *, purpose: Purpose = "signature"
) -> PartialSignature:
    """Node side: σ_i = s_i·H(m) (for purpose "pop", m is the group public key)."""
    public = _check_package(key_share.public)
    hashed = hash_to_g2(_signed_message(public, message, purpose), _dst(purpose))
    sigma = hashed.scalar_mul(key_share.secret_share.expose())
    return PartialSignature(identifier=key_share.identifier, signature=sigma, purpose=purpose)


def pop_sign_share(key_share: KeyShare[Any]) -> PartialSignature:
    """Node side: this node's share of the group key's proof of possession."""
    return sign_share(key_share, b"", purpose="pop")


def _index(
    public: PublicKeyPackage[Any], partials: Sequence[PartialSignature], purpose: str
) -> dict[int, BlstP2Element]:
    by = _wire.index_by_identifier(
        partials, PartialSignature, public.verifying_shares, "partial signatures"
    )
    for i, p in by.items():
        if p.purpose != purpose:
            raise InvalidInput(f"partial of participant {i} is for {p.purpose!r}")
    return {i: p.signature for i, p in by.items()}


def verify_share(
    public: PublicKeyPackage[Any],
    message: bytes,
    partial: PartialSignature,
    *,
    purpose: Purpose = "signature",
) -> None:
    """Check e(Y_i, H(m)) == e(G1, σ_i); raises InvalidSignatureShare naming the node."""
    public = _check_package(public)
    sig = _index(public, [partial], purpose)[partial.identifier]
    hashed = hash_to_g2(_signed_message(public, message, purpose), _dst(purpose))
    if BLS12_381_G2.is_identity(sig) or not core_verify_points(
        public.verifying_shares[partial.identifier], hashed, sig
    ):
        raise InvalidSignatureShare("BLS partial signature does not verify", [partial.identifier])


def _interpolate(points: Mapping[int, BlstP2Element]) -> BlstP2Element:
    lam = lagrange_coefficients(list(points), BLS12_381_G2.order)
    return BLS12_381_G2.multi_mul([(sig, lam[i]) for i, sig in points.items()])


@dataclass(frozen=True)
class CombineResult:
    signature: bytes
    """The 96-byte compressed signature."""
    excluded: tuple[int, ...]
    """Nodes whose partials were invalid and left out."""


def combine_robust(
    public: PublicKeyPackage[Any],
    message: bytes,
    partials: Sequence[PartialSignature],
    *,
    purpose: Purpose = "signature",
) -> CombineResult:
    """Combine, leaving out invalid partials when at least t valid ones remain.

    Raises InvalidParticipants with fewer than t partials, and InvalidSignatureShare (culprits:
    every invalid partial) when fewer than t valid partials remain."""
    public = _check_package(public)
    points = _index(public, partials, purpose)
    t = public.threshold
    if len(points) < t:
        raise InvalidParticipants(f"need {t} partial signatures, got {len(points)}")
    hashed = hash_to_g2(_signed_message(public, message, purpose), _dst(purpose))
    y = public.group_public_key
    first = {i: points[i] for i in sorted(points)[:t]}
    sigma = _interpolate(first)
    if not BLS12_381_G2.is_identity(sigma) and core_verify_points(y, hashed, sigma):
        return CombineResult(BLS12_381_G2.serialize_element(sigma), ())
    # Slow path: name every bad partial, then retry with the valid ones.
    bad = [
        i
        for i, sig in sorted(points.items())
        if BLS12_381_G2.is_identity(sig)
        or not core_verify_points(public.verifying_shares[i], hashed, sig)
    ]
    good = {i: s for i, s in sorted(points.items()) if i not in bad}
    if not bad:
        # Every partial is valid yet t of them do not combine: the package itself is wrong.
        raise InvalidInput("verifying shares do not match the group public key")
    if len(good) < t:
        raise InvalidSignatureShare(f"only {len(good)} valid BLS partials, need {t}", bad)
    sigma = _interpolate({i: good[i] for i in sorted(good)[:t]})
    if not core_verify_points(y, hashed, sigma):  # pragma: no cover - inconsistent package
        raise InvalidInput("valid partials do not combine: the key package is inconsistent")
    return CombineResult(BLS12_381_G2.serialize_element(sigma), tuple(bad))


def combine(
    public: PublicKeyPackage[Any],
    message: bytes,
    partials: Sequence[PartialSignature],
    *,
    purpose: Purpose = "signature",
) -> bytes:
    """Combine partials into a 96-byte signature; raises InvalidSignatureShare naming every node
    whose partial is invalid (the gateway excludes them and calls again)."""
    result = combine_robust(public, message, partials, purpose=purpose)
    if result.excluded:
        raise InvalidSignatureShare("invalid BLS partial signatures", result.excluded)
    return result.signature


def combine_pop(public: PublicKeyPackage[Any], partials: Sequence[PartialSignature]) -> bytes:
    """The group key's proof of possession from t POP partials."""
    return combine(public, b"", partials, purpose="pop")


# -- in-memory drivers (tests, benchmarks) -------------------------------------------------------
def sign(key_shares: Sequence[KeyShare[Any]], message: bytes) -> bytes:
    """Sign with the given shares (at least t of them) in one process."""
    if not key_shares:
        raise InvalidParticipants("no key shares")
    return combine(key_shares[0].public, message, [sign_share(ks, message) for ks in key_shares])


def prove_possession(key_shares: Sequence[KeyShare[Any]]) -> bytes:
    """Threshold PopProve with the given shares in one process."""
    if not key_shares:
        raise InvalidParticipants("no key shares")
    return combine_pop(key_shares[0].public, [pop_sign_share(ks) for ks in key_shares])
