"""Signing under a tweaked key: BIP32 non-hardened children and BIP341 taproot outputs.

Two equivalent ways, pick one per call site:

1. Pass `tweak=` (an additive scalar, e.g. the sum of BIP32 IL values along a non-hardened path) and,
   for FROST-BIP340-v1, `merkle_root=` (b"" or 32 bytes) to `sign`, `verify_signature_share` and
   `aggregate`. The key package stays untweaked; the signing key is derived (and cached) per call.
   `signing_public_key` returns the key the signatures verify under (for BIP340 with a merkle root:
   the x-only taproot output key).
2. `tweak_for_signing` returns a tweaked `KeyShare` / `PublicKeyPackage` (every share gets the tweak
   added, and for taproot the even-Y negation of the internal key), to sign with no further tweak.
   It costs n base multiplications per call, so prefer 1. on hot paths.

For BIP340 the final even-Y normalisation of the signing key is always applied inside `sign`.
"""

from __future__ import annotations

from typing import Any, TypeVar, overload

from tholos.crypto.errors import InvalidInput
from tholos.crypto.frost.bip340 import Bip340, taproot_tweak
from tholos.crypto.frost.ciphersuite import Ciphersuite
from tholos.crypto.groups import SECP256K1
from tholos.crypto.keys import KeyShare, PublicKeyPackage

E = TypeVar("E")


def signing_public_key(
    suite: Ciphersuite[E],
    public_key_package: PublicKeyPackage[E],
    *,
    tweak: int = 0,
    merkle_root: bytes | None = None,
) -> bytes:
    """The suite encoding of the key that `aggregate(..., tweak, merkle_root)` signatures verify
    under (32-byte x-only for BIP340, 32 bytes for Ed25519, 33 compressed for secp256k1)."""
    return suite.effective_key(
        public_key_package.group_public_key, tweak, merkle_root
    ).public_key_bytes


@overload
def tweak_for_signing(
    suite: Ciphersuite[E],
    key: KeyShare[E],
    *,
    tweak: int = 0,
    merkle_root: bytes | None = None,
) -> KeyShare[E]: ...


@overload
def tweak_for_signing(
    suite: Ciphersuite[E],
    key: PublicKeyPackage[E],
    *,
    tweak: int = 0,
    merkle_root: bytes | None = None,
) -> PublicKeyPackage[E]: ...


def tweak_for_signing(
    suite: Ciphersuite[Any],
    key: KeyShare[Any] | PublicKeyPackage[Any],
    *,
    tweak: int = 0,
    merkle_root: bytes | None = None,
) -> Any:
    """A KeyShare or PublicKeyPackage of the tweaked key: s -> s + tweak, then for BIP341
    s -> (±s) + TapTweak(x(P) || merkle_root) with P the even-Y internal key."""
    public = key.public if isinstance(key, KeyShare) else key
    if public.group is not suite.group:
        raise InvalidInput(f"key is over {public.group.name}, suite needs {suite.group.name}")
    if merkle_root is not None and not isinstance(suite, Bip340):
        raise InvalidInput(f"{suite.name}: a taproot merkle root needs the BIP340 suite")
    suite.effective_key(public.group_public_key, tweak, merkle_root)  # validates the arguments
    out: Any = key.tweaked(tweak) if tweak else key
    if merkle_root is not None:
        y = out.public.group_public_key if isinstance(out, KeyShare) else out.group_public_key
        if not SECP256K1.has_even_y(y):
            out = out.negated()
            y = SECP256K1.neg(y)
        out = out.tweaked(taproot_tweak(SECP256K1.x_only(y), merkle_root))
    return out
