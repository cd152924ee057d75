"""RFC 9591 section 4 helpers: binding factors (4.4), group commitment (4.5), challenge (4.6).

`SigningContext` bundles what every party derives from a signing package (effective key, binding
factors, group commitment, challenge) so sign, verify_signature_share and aggregate compute it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, NewType, TypeVar

from tholos.crypto.errors import InvalidInput
from tholos.crypto.frost.ciphersuite import Ciphersuite, EffectiveKey, check_suite
from tholos.crypto.frost.round1 import SigningCommitments
from tholos.crypto.frost.signing_package import SigningPackage
from tholos.crypto.hazmat.shamir import lagrange_coefficient
from tholos.crypto.keys import PublicKeyPackage

E = TypeVar("E")

BindingFactor = NewType("BindingFactor", int)
"""ρ_i = H1(rho_input_prefix || SerializeScalar(i)), RFC 9591 section 4.4."""


def compute_binding_factors(
    suite: Ciphersuite[E], key: EffectiveKey[E], signing_package: SigningPackage[E]
) -> dict[int, BindingFactor]:
    """RFC 9591 section 4.4: the binding factor of every signer in the package.

    `key.public_key_enc` is SerializeElement of the key the signature verifies under (the tweaked,
    normalised key when a tweak is in use, so the tweak is bound into every binding factor)."""
    prefix = (
        key.public_key_enc
        + suite.H4(signing_package.message)
        + suite.H5(signing_package.encode_group_commitment_list())
    )
    ser = suite.group.serialize_scalar
    return {i: BindingFactor(suite.H1(prefix + ser(i))) for i in signing_package.identifiers}


def compute_commitment_share(
    suite: Ciphersuite[E], commitments: SigningCommitments[E], binding_factor: BindingFactor
) -> E:
    """D_i + ρ_i·E_i, one signer's part of the group commitment (RFC 9591 section 5.4)."""
    g = suite.group
    return g.add(commitments.hiding, g.mul(commitments.binding, binding_factor))


def compute_group_commitment(
    suite: Ciphersuite[E],
    signing_package: SigningPackage[E],
    binding_factors: dict[int, BindingFactor],
    *,
    own_nonces: tuple[int, int, int] | None = None,
) -> E:
    """RFC 9591 section 4.5: R = Σ (D_i + ρ_i·E_i), as one native sum of the points.

    A signer may pass `own_nonces` = (identifier, hiding, binding): its own term is then computed as
    (d + ρ·e)·G, a fixed-base multiplication instead of a variable-base one and an addition. The
    result is the same because `sign` first checks that the package holds this signer's commitments
    (D, E) = (d·G, e·G)."""
    g = suite.group
    points: list[E] = []
    for i, c in signing_package.commitments.items():
        if own_nonces is not None and i == own_nonces[0]:
            points.append(g.base_mul(own_nonces[1] + binding_factors[i] * own_nonces[2]))
        else:
            points.append(c.hiding)
            points.append(g.mul(c.binding, binding_factors[i]))
    return g.sum(points)


def compute_challenge(
    suite: Ciphersuite[E], group_commitment: E, key: EffectiveKey[E], message: bytes
) -> int:
    """RFC 9591 section 4.6 (BIP340: the tagged x-only challenge)."""
    return suite.challenge(group_commitment, key, message)


@dataclass(frozen=True)
class SigningContext(Generic[E]):
    """Everything public a signer or the coordinator derives from one signing package."""

    suite: Ciphersuite[E]
    package: SigningPackage[E]
    key: EffectiveKey[E]
    binding_factors: dict[int, BindingFactor]
    group_commitment: E
    """R as it appears in the signature (negated to even Y for BIP340)."""
    negated: bool
    """BIP340: R had odd Y, so nonces and commitment shares are negated."""
    challenge: int


def signing_context(
    suite: Ciphersuite[E],
    signing_package: SigningPackage[E],
    public: PublicKeyPackage[E],
    tweak: int = 0,
    merkle_root: bytes | None = None,
    *,
    own_nonces: tuple[int, int, int] | None = None,
) -> SigningContext[E]:
    check_suite(suite, signing_package.suite, "signing package")
    signing_package.check_against(public)
    key = suite.effective_key(public.group_public_key, tweak, merkle_root)
    rho = compute_binding_factors(suite, key, signing_package)
    r = compute_group_commitment(suite, signing_package, rho, own_nonces=own_nonces)
    g = suite.group
    if g.is_identity(r):  # RFC 9591: SerializeElement(R) fails; abort (happens only if forced)
        raise InvalidInput("group commitment is the identity")
    negated = suite.commitment_is_negated(r)
    if negated:
        r = g.neg(r)
    c = compute_challenge(suite, r, key, signing_package.message)
    return SigningContext(suite, signing_package, key, rho, r, negated, c)


@lru_cache(maxsize=4096)
def lagrange(identifiers: tuple[int, ...], identifier: int, order: int) -> int:
    """λ_i at 0 for the signer set (RFC 9591 derive_interpolating_value), cached: signer sets repeat
    (a 2-of-4 cluster has six), and the modular inversion dominates the cost of the coefficient."""
    return lagrange_coefficient(identifiers, identifier, order)
