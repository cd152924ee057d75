"""Governance enforced by every node: users, admin-quorum documents, policy, approvals, velocity.

Pure and I/O-light: the only storage is the node-local SQLite journal. What a node calls:
- at start: `state = load_genesis(genesis_bytes, pinned_hash)` (or `replay(genesis, events)`);
- on a governance document / kill switch from the gateway: `state = apply_document(state, raw)`,
  `state = engage_kill_switch(state, raw)` (raise and change nothing if refused);
- on a new request (step 1): `prep = evaluator.prepare_reservation(state, request, now)`, then
  `journal.reserve(prep.entry, prep.limits)` and return `sign_receipt(...)`;
- on a read (step 2): return `sign_snapshot(..., journal.entries(), max_window, identity_key)`;
- before contributing a share (step 3): `entries = verify_quorum_read(...)`, then
  `evaluator.evaluate(state, request, approvals, now=now, seen=journal, velocity_entries=entries)`,
  and on Accept `journal.mark_signed(request_id)` before the share leaves the node.
See velocity.py for why this order keeps velocity limits across the cluster.
"""

from tholos.governance._canonical import canonical_json, parse_canonical_json, tagged_digest
from tholos.governance._keys import public_key_hex, read_user_key
from tholos.governance.approvals import quorum_met, verify_approvals
from tholos.governance.decision import Accept, Decision, Refuse, decision_record
from tholos.governance.documents import (
    DocumentSignature,
    GovernanceDocument,
    SignedDocument,
    sign_document,
)
from tholos.governance.engine import Evaluator, Reservation, journal_entry
from tholos.governance.errors import (
    AlreadySigned,
    GovernanceError,
    InvalidDocument,
    InvalidSignature,
    JournalError,
    PayloadError,
    QuorumNotMet,
    VersionConflict,
)
from tholos.governance.journal import Journal, SeenStore, SQLiteJournal
from tholos.governance.killswitch import KillSwitchEngage, SignedKillSwitch, sign_kill_switch
from tholos.governance.parsers import (
    ParsedPayload,
    ParserRegistry,
    PayloadParser,
    RawParser,
    raw_payload,
)
from tholos.governance.policy import (
    ApprovalRequirement,
    Match,
    Policy,
    Rule,
    TimeWindow,
    VelocityLimit,
)
from tholos.governance.quorum import (
    JournalSnapshot,
    NodeSigner,
    ReservationReceipt,
    WireEntry,
    receipts_digest,
    sign_receipt,
    sign_snapshot,
    verify_quorum_read,
)
from tholos.governance.requests import (
    Approval,
    Intent,
    SigningRequest,
    approve,
    new_request,
    request_digest,
    sign_cancellation,
)
from tholos.governance.state import (
    GovernanceState,
    KillSwitch,
    apply_document,
    apply_documents,
    engage_kill_switch,
    load_genesis,
    replay,
    verify_admin_quorum,
)
from tholos.governance.users import ROLES, Registry, Role, User
from tholos.governance.velocity import EntryStatus, JournalEntry, check_velocity, merge_quorum

__all__ = [
    "ROLES",
    "Accept",
    "AlreadySigned",
    "Approval",
    "ApprovalRequirement",
    "Decision",
    "DocumentSignature",
    "EntryStatus",
    "Evaluator",
    "GovernanceDocument",
    "GovernanceError",
    "GovernanceState",
    "Intent",
    "InvalidDocument",
    "InvalidSignature",
    "Journal",
    "JournalEntry",
    "JournalError",
    "JournalSnapshot",
    "KillSwitch",
    "KillSwitchEngage",
    "Match",
    "NodeSigner",
    "ParsedPayload",
    "ParserRegistry",
    "PayloadError",
    "PayloadParser",
    "Policy",
    "QuorumNotMet",
    "RawParser",
    "Refuse",
    "Registry",
    "Reservation",
    "ReservationReceipt",
    "Role",
    "Rule",
    "SQLiteJournal",
    "SeenStore",
    "SignedDocument",
    "SignedKillSwitch",
    "SigningRequest",
    "TimeWindow",
    "User",
    "VelocityLimit",
    "VersionConflict",
    "WireEntry",
    "apply_document",
    "apply_documents",
    "approve",
    "canonical_json",
    "check_velocity",
    "decision_record",
    "engage_kill_switch",
    "journal_entry",
    "load_genesis",
    "merge_quorum",
    "new_request",
    "parse_canonical_json",
    "public_key_hex",
    "quorum_met",
    "raw_payload",
    "read_user_key",
    "receipts_digest",
    "replay",
    "request_digest",
    "sign_cancellation",
    "sign_document",
    "sign_kill_switch",
    "sign_receipt",
    "sign_snapshot",
    "tagged_digest",
    "verify_admin_quorum",
    "verify_approvals",
    "verify_quorum_read",
]
