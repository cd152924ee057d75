"""Audit: each node's append-only, hash-chained, checkpoint-signed log, and its verifiers."""

from tholos.audit.crosscheck import ReleasedSignature, Shortfall, cross_check, released_signatures
from tholos.audit.log import AuditLog, IdentitySigner
from tholos.audit.records import (
    GENESIS_PREV_HASH,
    KIND_DECISION,
    KIND_GOVERNANCE,
    KIND_KILL_SWITCH,
    KIND_MEASUREMENT,
    KIND_RESERVATION,
    KIND_SIGNATURE_RELEASED,
    KIND_SIGNATURE_SHARE,
    AuditEntry,
    Checkpoint,
    entry_hash,
)
from tholos.audit.verify import AuditReport, Issue, verify_chain

__all__ = [
    "GENESIS_PREV_HASH",
    "KIND_DECISION",
    "KIND_GOVERNANCE",
    "KIND_KILL_SWITCH",
    "KIND_MEASUREMENT",
    "KIND_RESERVATION",
    "KIND_SIGNATURE_RELEASED",
    "KIND_SIGNATURE_SHARE",
    "AuditEntry",
    "AuditLog",
    "AuditReport",
    "Checkpoint",
    "IdentitySigner",
    "Issue",
    "ReleasedSignature",
    "Shortfall",
    "cross_check",
    "entry_hash",
    "released_signatures",
    "verify_chain",
]
