"""Exception types of tholos.crypto. Verification raises; errors about peers carry culprits.

Messages never contain secret values: only identifiers, lengths and names of the check that failed.
"""

from __future__ import annotations

from collections.abc import Iterable


class CryptoError(Exception):
    """Base class of every error raised by tholos.crypto."""


class InvalidInput(CryptoError, ValueError):
    """Malformed input: wrong length, out of range, unknown id. Nothing was changed."""


class InvalidElement(InvalidInput):
    """Bytes that are not a valid, canonical, non-identity group element."""


class InvalidScalar(InvalidInput):
    """Bytes or an int that is not a canonical scalar (must be 0 <= s < order)."""


class InvalidParticipants(InvalidInput):
    """Identifiers that are zero, out of range, duplicated, or fewer than the threshold."""


class InvalidSignature(CryptoError):
    """A signature that does not verify under the given public key and message."""


class CulpritError(CryptoError):
    """A protocol failure attributable to specific participants, named by identifier."""

    def __init__(self, message: str, culprits: Iterable[int]) -> None:
        self.culprits: tuple[int, ...] = tuple(sorted(set(culprits)))
        super().__init__(f"{message} (culprits: {list(self.culprits)})")


class InvalidSignatureShare(CulpritError):
    """One or more signature shares failed verification; the gateway excludes the culprits."""


class InvalidShare(CulpritError):
    """A secret share (DKG, refresh, reshare, repair) inconsistent with its dealer's commitments."""


class InvalidProof(CulpritError):
    """A zero-knowledge proof (proof of knowledge, Chaum-Pedersen, ...) that does not verify."""


class ProtocolAbort(CulpritError):
    """The protocol cannot complete; the culprits (if any) are named."""


class StateError(CryptoError):
    """An operation that is not allowed in the current state of a protocol state machine."""


class NonceReuse(StateError):
    """A signing nonce was used already. Nonces are consumed by the API; reuse fails closed."""
