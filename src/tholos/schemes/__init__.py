"""The scheme registry: every scheme tholos serves, by name, as node and gateway see it.

| name      | kind  | module                  | signing                                       |
|-----------|-------|-------------------------|-----------------------------------------------|
| bip340    | frost | schemes/frost.py        | FROST-BIP340-v1, nonce pools, SignBatch RPC    |
| ed25519   | frost | schemes/frost.py        | FROST-ED25519-SHA512-v1                        |
| secp256k1 | frost | schemes/frost.py        | FROST-secp256k1-SHA256-v1                      |
| ecdsa     | ecdsa | schemes/ecdsa.py        | presignatures + one round (2t-1 signers)       |
| bls12381  | bls   | schemes/bls.py          | one round, t partial signatures                |
| dise      | dise  | schemes/dise.py         | DPRF partial evaluations for the client        |

A scheme is a `Scheme` (schemes/base.py) registered here; its `kind` selects the node's and the
gateway's signing module (`tholos.node.<kind>`, `tholos.gateway.<kind>`), each registered in
that side's own registry. Node and gateway import this package, never the hazmat layer.
"""

from __future__ import annotations

from tholos.crypto.errors import InvalidInput
from tholos.crypto.frost.bip340 import FROST_BIP340
from tholos.crypto.frost.suites import FROST_ED25519_SHA512, FROST_SECP256K1_SHA256
from tholos.schemes.base import (
    MAX_MESSAGE,
    SIGNING_OPTIONS,
    OptionNotForScheme,
    Scheme,
    SignerCommitment,
    SigningRequest,
    UnderivableScheme,
    chain_code_for,
    parse_path,
)
from tholos.schemes.bls import BlsScheme
from tholos.schemes.dise import DiseScheme
from tholos.schemes.ecdsa import ECDSA_PRESIG_POOL, EcdsaScheme
from tholos.schemes.frost import FrostScheme

SCHEMES: dict[str, Scheme] = {}
"""Every scheme by name (the `scheme` field of keys, requests and the CLI)."""
POOLS: dict[str, FrostScheme] = {}
"""FROST schemes by nonce pool (= suite name); the node's `Commitments` RPC serves these."""


def register(scheme: Scheme) -> Scheme:
    """Add a scheme to the registry (a name is registered once)."""
    if scheme.name in SCHEMES:
        raise ValueError(f"scheme {scheme.name!r} is already registered")
    SCHEMES[scheme.name] = scheme
    if isinstance(scheme, FrostScheme):
        POOLS[scheme.pool] = scheme
    return scheme


def as_frost(scheme: Scheme) -> FrostScheme:
    """The scheme as a FROST scheme, or InvalidInput naming it (a key of another kind)."""
    if not isinstance(scheme, FrostScheme):
        raise InvalidInput(f"{scheme.name} keys are not signed through the FROST path")
    return scheme


for _s in (
    FrostScheme("bip340", FROST_BIP340, 32),
    FrostScheme("ed25519", FROST_ED25519_SHA512, 32),
    FrostScheme("secp256k1", FROST_SECP256K1_SHA256, 33),
    EcdsaScheme(),
    BlsScheme(),
    DiseScheme(),
):
    register(_s)

GROUP_NAMES = frozenset(POOLS)

__all__ = [
    "ECDSA_PRESIG_POOL",
    "GROUP_NAMES",
    "MAX_MESSAGE",
    "POOLS",
    "SCHEMES",
    "SIGNING_OPTIONS",
    "BlsScheme",
    "DiseScheme",
    "EcdsaScheme",
    "FrostScheme",
    "OptionNotForScheme",
    "Scheme",
    "SignerCommitment",
    "SigningRequest",
    "UnderivableScheme",
    "as_frost",
    "chain_code_for",
    "parse_path",
    "register",
]
