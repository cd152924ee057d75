"""FROST threshold Schnorr signatures (RFC 9591) and the BIP340/Taproot variant.

Safe API used by nodes and gateways::

    nonces, commitments = commit(suite, key_share)                # round 1, each signer
    package = SigningPackage({i: commitments_i, ...}, message)     # coordinator
    share = sign(suite, package, nonces, key_share)                # round 2, consumes nonces
    signature = aggregate(suite, package, {i: share_i}, public)    # coordinator, verifies shares
    suite.verify(message, signature, public_key_bytes)             # anyone; raises InvalidSignature

Suites: FROST_ED25519_SHA512, FROST_SECP256K1_SHA256 (RFC 9591), FROST_BIP340 (BIP340/BIP341).
Tweaks (BIP32 children, taproot): see `tholos.crypto.frost.tweak`.
"""

from tholos.crypto.frost.aggregate import aggregate, verify_signature_share
from tholos.crypto.frost.bip340 import FROST_BIP340, Bip340, taproot_tweak
from tholos.crypto.frost.ciphersuite import (
    FORMAT_VERSION,
    Ciphersuite,
    EffectiveKey,
    suite_by_name,
)
from tholos.crypto.frost.helpers import (
    BindingFactor,
    compute_binding_factors,
    compute_challenge,
    compute_group_commitment,
)
from tholos.crypto.frost.round1 import (
    SigningCommitments,
    SigningNonces,
    commit,
    commit_many,
    nonce_generate,
)
from tholos.crypto.frost.round2 import SignatureShare, sign
from tholos.crypto.frost.signing_package import SigningPackage
from tholos.crypto.frost.suites import (
    FROST_ED25519_SHA512,
    FROST_SECP256K1_SHA256,
    Ed25519Sha512,
    Secp256k1Sha256,
)
from tholos.crypto.frost.tweak import signing_public_key, tweak_for_signing

__all__ = [
    "FORMAT_VERSION",
    "FROST_BIP340",
    "FROST_ED25519_SHA512",
    "FROST_SECP256K1_SHA256",
    "BindingFactor",
    "Bip340",
    "Ciphersuite",
    "Ed25519Sha512",
    "EffectiveKey",
    "Secp256k1Sha256",
    "SignatureShare",
    "SigningCommitments",
    "SigningNonces",
    "SigningPackage",
    "aggregate",
    "commit",
    "commit_many",
    "compute_binding_factors",
    "compute_challenge",
    "compute_group_commitment",
    "nonce_generate",
    "sign",
    "signing_public_key",
    "suite_by_name",
    "taproot_tweak",
    "tweak_for_signing",
    "verify_signature_share",
]
