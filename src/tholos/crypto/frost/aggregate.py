"""Signature share aggregation and verification (RFC 9591 sections 5.3 and 5.4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from tholos.crypto.errors import (
    InvalidInput,
    InvalidParticipants,
    InvalidSignature,
    InvalidSignatureShare,
)
from tholos.crypto.frost.ciphersuite import Ciphersuite, check_suite
from tholos.crypto.frost.helpers import (
    SigningContext,
    compute_commitment_share,
    lagrange,
    signing_context,
)
from tholos.crypto.frost.round2 import SignatureShare
from tholos.crypto.frost.signing_package import SigningPackage
from tholos.crypto.keys import PublicKeyPackage

E = TypeVar("E")


def _share_is_valid(
    ctx: SigningContext[E], public: PublicKeyPackage[E], identifier: int, z_i: int
) -> bool:
    """RFC 9591 section 5.4: z_i·G == (D_i + ρ_i·E_i) + (c·λ_i)·Y_i, adapted to the effective key.

    With the share map s_i -> a·s_i + b (a = ±1, see EffectiveKey) and the BIP340 commitment
    negation, the check is (z_i - c·λ_i·b)·G == ±(D_i + ρ_i·E_i) + (a·c·λ_i)·Y_i, which avoids
    computing the tweaked verifying shares."""
    suite = ctx.suite
    g = suite.group
    q = g.order
    pkg = ctx.package
    comm_share = compute_commitment_share(
        suite, pkg.commitments[identifier], ctx.binding_factors[identifier]
    )
    if ctx.negated:
        comm_share = g.neg(comm_share)
    c_lam = ctx.challenge * lagrange(pkg.identifiers, identifier, q) % q
    key_coeff = -c_lam if ctx.key.negate else c_lam
    left = g.base_mul(z_i - c_lam * ctx.key.offset)
    right = g.add(comm_share, g.mul(public.verifying_shares[identifier], key_coeff))
    return g.eq(left, right)


def _check_share_type(suite: Ciphersuite[E], identifier: int, share: object) -> int:
    if not isinstance(share, SignatureShare):
        raise InvalidInput(f"share of participant {identifier} is not a SignatureShare")
    check_suite(suite, share.suite, f"signature share of participant {identifier}")
    return share.share


def verify_signature_share(
    suite: Ciphersuite[E],
    identifier: int,
    signature_share: SignatureShare[E],
    signing_package: SigningPackage[E],
    public_key_package: PublicKeyPackage[E],
    *,
    tweak: int = 0,
    merkle_root: bytes | None = None,
) -> None:
    """RFC 9591 section 5.4; raises InvalidSignatureShare(culprits=[identifier]) if invalid.

    `tweak` / `merkle_root` as given to `round2.sign`."""
    z_i = _check_share_type(suite, identifier, signature_share)
    if identifier not in signing_package.commitments:
        raise InvalidParticipants(f"participant {identifier} is not in the signing package")
    ctx = signing_context(suite, signing_package, public_key_package, tweak, merkle_root)
    if not _share_is_valid(ctx, public_key_package, identifier, z_i):
        raise InvalidSignatureShare("signature share does not verify", culprits=[identifier])


def aggregate(
    suite: Ciphersuite[E],
    signing_package: SigningPackage[E],
    shares: Mapping[int, SignatureShare[E]],
    public_key_package: PublicKeyPackage[E],
    *,
    tweak: int = 0,
    merkle_root: bytes | None = None,
) -> bytes:
    """RFC 9591 section 5.3: the signature (R, z = Σ z_i), encoded for the suite, after verification.

    Optimisation (the cheap path): instead of t share checks (RFC 9591 section 5.4, two scalar
    multiplications each) the shares are summed and the final signature is verified once. If it
    verifies, the output is a valid signature, which is all share verification exists to ensure
    (shares that are wrong but cancel exactly are not reported; they do not affect the result).
    Only if it fails is every share checked individually, and InvalidSignatureShare names ALL
    signers whose shares are bad, for the coordinator to exclude and retry. Nothing is returned on
    failure.

    `shares` must hold exactly one share per signer of the package (InvalidParticipants otherwise);
    `tweak` / `merkle_root` as given to `round2.sign`; the result verifies under
    `signing_public_key(suite, public_key_package, tweak=..., merkle_root=...)`.
    """
    if not isinstance(shares, Mapping):
        raise InvalidInput("shares must be a mapping identifier -> SignatureShare")
    ids = set(signing_package.commitments)
    extra = sorted(set(shares) - ids, key=repr)
    if extra:
        raise InvalidParticipants(f"shares from participants {extra} not in the signing package")
    missing = sorted(ids - set(shares))
    if missing:
        raise InvalidParticipants(f"no signature shares from participants {missing}")
    zs = {i: _check_share_type(suite, i, s) for i, s in shares.items()}
    ctx = signing_context(suite, signing_package, public_key_package, tweak, merkle_root)
    q = suite.group.order
    z = sum(zs.values()) % q
    signature = suite.serialize_signature(ctx.group_commitment, z)
    try:
        suite.verify_elements(
            signing_package.message,
            ctx.group_commitment,
            z,
            ctx.key.public_key,
            signature,
            ctx.key.public_key_bytes,
        )
    except InvalidSignature:
        culprits = [
            i
            for i in signing_package.identifiers
            if not _share_is_valid(ctx, public_key_package, i, zs[i])
        ]
        if culprits:
            raise InvalidSignatureShare(
                "signature shares do not verify", culprits=culprits
            ) from None
        raise InvalidInput(
            "every share verifies but the signature does not: inconsistent public key package"
        ) from None
    return signature
