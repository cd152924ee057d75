"""Exception types of tholos.governance. Verification raises; nothing is changed when it does."""

from __future__ import annotations


class GovernanceError(Exception):
    """Base class of every error raised by tholos.governance."""


class InvalidDocument(GovernanceError, ValueError):
    """A document that is malformed, for another cluster, or inconsistent in itself."""


class InvalidSignature(GovernanceError):
    """A signature that does not verify, or a signer that is not allowed to sign this document."""


class QuorumNotMet(GovernanceError):
    """Fewer valid admin signatures than the current admin quorum requires."""


class VersionConflict(GovernanceError):
    """A governance document that is not the direct successor of the current one.

    Covers replayed (same or older version), rolled-back, reordered (skipped version) documents
    and documents whose prev_hash does not link to the current document.
    """


class PayloadError(GovernanceError, ValueError):
    """A payload that its chain's parser cannot parse."""


class AlreadySigned(GovernanceError):
    """A request id that this node has already signed (or finally refused)."""


class JournalError(GovernanceError):
    """A journal operation that is not allowed (unknown request, conflicting duplicate, ...)."""
