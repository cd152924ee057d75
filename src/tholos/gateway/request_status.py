"""The states a governed signing request shows its users, and how a signer round maps to them.

A request is `created`, then `reserved` (holds its write quorum) and then one of:
`awaiting-approval` (the signers' only objection is missing approvals: the error says what is
missing, e.g. "needs 1 more from treasury"), `signed`, `refused` (any other refusal: kill switch,
limits, windows, write quorum missed; final), `expired` (past its `expires_at` before it was
signed), `cancelled` (withdrawn by its initiator or an admin), `rejected` (an approver of the
request signed its rejection; the nodes refuse it for good), or `failed` (the request itself
cannot be signed). Only `OPEN` states may still become `signed`.
"""

from __future__ import annotations

import time

from tholos.gateway.tracked import Tracked

CREATED = "created"
RESERVED = "reserved"
AWAITING_APPROVAL = "awaiting-approval"
SIGNED = "signed"
REFUSED = "refused"
EXPIRED = "expired"
CANCELLED = "cancelled"
REJECTED = "rejected"
FAILED = "failed"
POLICY_REFUSED = "refused-by-policy"
"""What step 3 (governed_rounds) reports for any policy refusal; `classify`
turns it into one of the states above before anyone sees it."""

OPEN = frozenset({CREATED, RESERVED, AWAITING_APPROVAL})
STATES = (
    CREATED,
    RESERVED,
    AWAITING_APPROVAL,
    SIGNED,
    REFUSED,
    EXPIRED,
    CANCELLED,
    REJECTED,
    FAILED,
)
_NEEDS = "approvals: needs "


def classify(t: Tracked) -> None:
    """Map a policy refusal of the signers to `awaiting-approval`, `expired` or `refused`."""
    if t.status != POLICY_REFUSED:
        return
    policy = [v for s, v in sorted(t.refusals.items()) if s in t.signers and v["rule_id"] != "node"]
    if any(v["rule_id"] == "expired" for v in policy):
        t.status = EXPIRED
    elif policy and all(v["reason"].startswith(_NEEDS) for v in policy):
        t.status = AWAITING_APPROVAL
        t.error = policy[0]["reason"]  # "approvals: needs 1 more from treasury (rule: ...)"
    else:
        t.status = REFUSED


def expire(t: Tracked, now: float | None = None) -> bool:
    """Mark an open request past its expiry `expired`; True if it changed."""
    if t.status in OPEN and (time.time() if now is None else now) >= t.request.intent.expires_at:
        t.status = EXPIRED
        t.error = f"expired at {t.request.intent.expires_at} before it was signed"
        return True
    return False
