"""What every admin-signed change (key changes, committee changes) shares: its lifetime, the
freshness and quorum checks each node makes before applying it, and adding one admin's signature."""

from __future__ import annotations

from typing import Protocol

from tholos.governance.documents import DocumentSignature
from tholos.governance.errors import InvalidDocument, VersionConflict
from tholos.governance.state import GovernanceState, verify_admin_quorum

MAX_LIFETIME = 7 * 86_400
"""A change is valid for at most a week after it was issued (admins sign asynchronously)."""
CLOCK_SKEW = 300


class AdminChange(Protocol):
    governance_version: int
    issued_at: int
    expires_at: int

    def signing_message(self) -> bytes: ...


def check_lifetime(issued_at: int, expires_at: int) -> None:
    """The model rule: expires after it is issued, by at most MAX_LIFETIME (ValueError)."""
    if not issued_at < expires_at <= issued_at + MAX_LIFETIME:
        raise ValueError(f"expires_at must be after issued_at, by at most {MAX_LIFETIME} s")


def check_current_and_signed(
    state: GovernanceState,
    change: AdminChange,
    signatures: tuple[DocumentSignature, ...],
    what: str,
    now: int,
) -> None:
    """Issued at this node's governance version, neither expired nor from the future, and signed
    by the admin quorum of the current registry; raise a GovernanceError naming `what` otherwise."""
    if change.governance_version != state.version:
        raise VersionConflict(
            f"{what} issued at governance version {change.governance_version}; this node is "
            f"at version {state.version}: the admins sign a new one"
        )
    if now > change.expires_at:
        raise InvalidDocument(f"{what} has expired")
    if now + CLOCK_SKEW < change.issued_at:
        raise InvalidDocument(f"{what} is issued in the future")
    verify_admin_quorum(state.registry, state.document.admin_quorum, change, signatures)


def with_signature(
    signatures: tuple[DocumentSignature, ...], signature: DocumentSignature
) -> tuple[DocumentSignature, ...]:
    """`signatures` with `signature` added (replacing an earlier one of the same signer)."""
    return (*(s for s in signatures if s.signer != signature.signer), signature)
