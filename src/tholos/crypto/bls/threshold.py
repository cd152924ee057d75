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

Partials are checked before a signature is released, in one batched pairing check (all partials
sign the same H(m)): with random 128-bit r_j (r_0 = 1),

    e(Σ r_j·PK_j, H(m)) == e(G1, Σ r_j·σ_j)

two Miller loops and one final exponentiation for any number of pairs instead of two Miller loops
and a final exponentiation per partial. Any set of errors e_j = σ_j − sk_j·H(m), not all zero,
passes only if Σ r_j·e_j = 0, with probability ≤ 2^-128 over one fresh r_j (G2 has prime order
and every partial was parsed with a subgroup check); a lone error has coefficient ≠ 0 and is always
caught. Only when the batch fails is each partial checked alone, to name the culprits, which are
left out.

`combine_robust` runs this check over the pairs (Y, σ), (Y_2, σ_2), …, (Y_t, σ_t) for the t
partials it interpolates: the Lagrange combination σ stands in for σ_1, an invertible change of
variables (λ_1 ≠ 0), so the one check covers every chosen partial (σ_1 through Y_1 = (Y − Σ_{j≥2}
λ_j·Y_j)/λ_1, which holds for a consistent package) and the released signature itself, at the
cost of checking the partials alone; partials beyond the first t are checked in the same batch
(one more scalar multiplication in G1 and in G2 each). `verify_shares` is the same check over the
partials as given.

Threshold proof of possession: the group key's POP is a threshold signature over the 48-byte group
public key under the POP DST (`purpose="pop"`), so a DKG-generated validator key can register on
Ethereum without ever existing in one place.
"""

from __future__ import annotations

import secrets
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
BATCH_COEFFICIENT_BITS = 128
"""Size of the random coefficients of the batched partial check (soundness error 2^-128)."""
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


def _hashed(public: PublicKeyPackage[Any], message: bytes, purpose: str) -> BlstP2Element:
    return hash_to_g2(_signed_message(public, message, purpose), _dst(purpose))


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
    hashed = _hashed(public, message, purpose)
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


def _share_valid(pk: BlstP1Element, hashed: BlstP2Element, sig: BlstP2Element) -> bool:
    return not BLS12_381_G2.is_identity(sig) and core_verify_points(pk, hashed, sig)


def batch_holds(
    hashed: BlstP2Element, pairs: Sequence[tuple[BlstP1Element, BlstP2Element]]
) -> bool:
    """One pairing check that every (PK_j, σ_j) verifies on the same H(m): e(Σ r_j·PK_j, H(m)) ==
    e(G1, Σ r_j·σ_j) with r_0 = 1 and fresh random r_j in [1, 2^128) (module docstring).

    False also for an empty list or when the combined signature is the identity (no honest
    partial set combines to it except with negligible probability)."""
    if not pairs:
        return False
    pk_acc, sig_acc = pairs[0]
    for pk, sig in pairs[1:]:
        r = secrets.randbelow((1 << BATCH_COEFFICIENT_BITS) - 1) + 1
        pk_acc = pk_acc + pk.scalar_mul(r)
        sig_acc = sig_acc + sig.scalar_mul(r)
    return _share_valid(pk_acc, hashed, sig_acc)


def _culprits(
    public: PublicKeyPackage[BlstP1Element],
    hashed: BlstP2Element,
    points: Mapping[int, BlstP2Element],
) -> list[int]:
    """Every identifier whose partial fails on its own (the slow path after a failed batch)."""
    return [
        i
        for i, sig in sorted(points.items())
        if not _share_valid(public.verifying_shares[i], hashed, sig)
    ]


def verify_share(
    public: PublicKeyPackage[Any],
    message: bytes,
    partial: PartialSignature,
    *,
    purpose: Purpose = "signature",
) -> None:
    """Check e(Y_i, H(m)) == e(G1, σ_i); raises InvalidSignatureShare naming the node."""
    verify_shares(public, message, [partial], purpose=purpose)


def verify_shares(
    public: PublicKeyPackage[Any],
    message: bytes,
    partials: Sequence[PartialSignature],
    *,
    purpose: Purpose = "signature",
) -> None:
    """Check every partial with one batched pairing check; if it fails, check each to raise
    InvalidSignatureShare naming every invalid one."""
    public = _check_package(public)
    points = _index(public, partials, purpose)
    hashed = _hashed(public, message, purpose)
    pairs = [(public.verifying_shares[i], sig) for i, sig in sorted(points.items())]
    if batch_holds(hashed, pairs):
        return
    bad = _culprits(public, hashed, points)
    if not bad:  # pragma: no cover - only with probability 2^-128 per call
        raise InvalidSignatureShare("BLS partial signatures do not verify", sorted(points))
    raise InvalidSignatureShare("BLS partial signature does not verify", bad)


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
    hashed = _hashed(public, message, purpose)
    y = public.group_public_key
    ids = sorted(points)
    sigma = _interpolate({i: points[i] for i in ids[:t]})
    # One check covers every partial and σ (σ stands in for the first; module docstring).
    pairs = [(y, sigma), *((public.verifying_shares[i], points[i]) for i in ids[1:])]
    if batch_holds(hashed, pairs):
        return CombineResult(BLS12_381_G2.serialize_element(sigma), ())
    # Slow path: name every bad partial, then combine t valid ones.
    bad = _culprits(public, hashed, points)
    good = {i: s for i, s in sorted(points.items()) if i not in bad}
    if not bad:
        # Every partial is valid yet t of them do not combine: the package itself is wrong.
        raise InvalidInput("verifying shares do not match the group public key")
    if len(good) < t:
        raise InvalidSignatureShare(f"only {len(good)} valid BLS partials, need {t}", bad)
    sigma = _interpolate({i: good[i] for i in sorted(good)[:t]})
    if not _share_valid(y, hashed, sigma):  # pragma: no cover - inconsistent package
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
