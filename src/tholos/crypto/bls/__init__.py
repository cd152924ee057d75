"""Threshold BLS12-381 signatures, min-pk, Ethereum proof-of-possession ciphersuite."""

from tholos.crypto.bls.basic import (
    POP_DST,
    SIG_DST,
    pop_prove,
    pop_verify,
    sk_to_pk,
    verify,
)
from tholos.crypto.bls.basic import sign as sign_single
from tholos.crypto.bls.threshold import (
    BATCH_COEFFICIENT_BITS,
    SCHEME,
    CombineResult,
    PartialSignature,
    batch_holds,
    combine,
    combine_pop,
    combine_robust,
    pop_sign_share,
    prove_possession,
    public_key_bytes,
    sign,
    sign_share,
    verify_share,
    verify_shares,
)

__all__ = [
    "BATCH_COEFFICIENT_BITS",
    "POP_DST",
    "SCHEME",
    "SIG_DST",
    "CombineResult",
    "PartialSignature",
    "batch_holds",
    "combine",
    "combine_pop",
    "combine_robust",
    "pop_prove",
    "pop_sign_share",
    "pop_verify",
    "prove_possession",
    "public_key_bytes",
    "sign",
    "sign_share",
    "sign_single",
    "sk_to_pk",
    "verify",
    "verify_share",
    "verify_shares",
]
