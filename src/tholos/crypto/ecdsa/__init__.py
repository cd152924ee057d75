"""Threshold ECDSA over secp256k1, honest majority (GJKR style): presignatures, one-round signing.

Phases: `presign` (offline, two broadcast rounds, 2t-1 parties), `sign` (online, one round: each
party sends s_i; the combiner checks each share, interpolates, normalises to low-S and verifies),
`signature` (plain ECDSA helpers), `driver` (in-memory runs and benchmarks).

Participants: 2t-1 for presigning and for signing (degree 2t-2 products), so n >= 2t-1; for
(t, n) = (2, 4) and (3, 7) presign with all n and sign with any 3 (resp. 5) of them.

Known gaps (see the module docstrings for details):
- presigning aborts on the first culprit (named); the gateway restarts without it;
- Feldman commitments to γ allow a rushing, selectively aborting adversary to bias Γ (not k, not
  the key); no commit-then-reveal round;
- presignatures are re-randomised multiplicatively (ρ·R) rather than additively as analysed by
  Groth–Shoup (Eurocrypt 2022); the security argument for this variant has not been re-derived;
- presignatures are bound to one key package: a refresh or reshare makes the pool useless;
- single-use is enforced in memory (`Presignature.consume`); the node store must mark a
  presignature used durably before its share leaves (it can be exported only while unused).
"""

from tholos.crypto.ecdsa.driver import run_presign, sign
from tholos.crypto.ecdsa.presign import (
    SCHEME,
    Presignature,
    PresignaturePublic,
    PresignDeal,
    PresignOpen,
    PresignParticipant,
    PresignShares,
    PresignState,
    key_fingerprint,
    min_participants,
    new_session_id,
    verify_transcript,
)
from tholos.crypto.ecdsa.sign import (
    CombineResult,
    SignatureShare,
    combine,
    combine_robust,
    sign_share,
    verify_signature_share,
)
from tholos.crypto.ecdsa.signature import EcdsaSignature, recover, verify

__all__ = [
    "SCHEME",
    "CombineResult",
    "EcdsaSignature",
    "PresignDeal",
    "PresignOpen",
    "PresignParticipant",
    "PresignShares",
    "PresignState",
    "Presignature",
    "PresignaturePublic",
    "SignatureShare",
    "combine",
    "combine_robust",
    "key_fingerprint",
    "min_participants",
    "new_session_id",
    "recover",
    "run_presign",
    "sign",
    "sign_share",
    "verify",
    "verify_signature_share",
    "verify_transcript",
]
