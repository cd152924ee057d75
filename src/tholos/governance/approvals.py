"""Approval checking: verify each approval, then match distinct approvers to quorum slots.

A requirement list such as [2 x treasury, 1 x risk] is satisfied only by three DIFFERENT people: an
approver in both groups fills one slot, not two (bipartite matching, tiny sizes).
"""

from __future__ import annotations

from collections.abc import Sequence

from tholos.governance import _keys
from tholos.governance.decision import Refuse
from tholos.governance.errors import InvalidSignature
from tholos.governance.policy import ApprovalRequirement
from tholos.governance.requests import APPROVAL_TAG, Approval, Intent
from tholos.governance.users import Registry, User


def verify_approvals(
    registry: Registry, intent: Intent, digest: bytes, approvals: Sequence[Approval]
) -> list[User] | Refuse:
    """The distinct users whose approvals of this exact request verify, or a refusal.

    Any approval that is for another request, from a non-approver, from the initiator, or with a
    bad signature refuses the whole request (fail closed, names the culprit).
    """
    message = APPROVAL_TAG + digest
    digest_hex = digest.hex()
    users: dict[str, User] = {}
    for approval in approvals:
        who = approval.approver
        if approval.request_id != intent.request_id or approval.digest != digest_hex:
            return Refuse("approvals", f"approval by {who} is for another request")
        if who == intent.initiator:
            return Refuse("approvals", f"{who} initiated the request and cannot approve it")
        user = registry.get(who)
        if user is None or "approver" not in user.roles:
            return Refuse("approvals", f"{who} is not an approver")
        if who in users:
            continue
        try:
            _keys.verify(registry.key(who), approval.signature, message, who)
        except InvalidSignature:
            return Refuse("approvals", f"approval signature of {who} does not verify")
        users[who] = user
    return list(users.values())


def quorum_met(requirements: Sequence[ApprovalRequirement], approvers: Sequence[User]) -> bool:
    """True if distinct approvers can fill every slot of every requirement."""
    if len(requirements) == 1:  # one group: count its members (approvers are distinct users)
        req = requirements[0]
        return sum(1 for a in approvers if a.has(req.group)) >= req.count
    slots = [req.group for req in requirements for _ in range(req.count)]
    if len(slots) > len(approvers):
        return False
    return all(o is not None for o in _match(slots, approvers))


def missing(
    requirements: Sequence[ApprovalRequirement], approvers: Sequence[User]
) -> list[tuple[str, int]]:
    """Per group, how many more distinct approvers the best assignment still lacks."""
    slots = [req.group for req in requirements for _ in range(req.count)]
    owner = _match(slots, approvers)
    short: dict[str, int] = {}
    for group, o in zip(slots, owner, strict=True):
        if o is None:
            short[group] = short.get(group, 0) + 1
    return [(g, short[g]) for g in dict.fromkeys(slots) if g in short]


def _match(slots: list[str], approvers: Sequence[User]) -> list[int | None]:
    """A maximum assignment of distinct approvers to slots (augmenting paths): slot -> approver."""
    owner: list[int | None] = [None] * len(slots)

    def assign(a: int, visited: set[int]) -> bool:
        for s, group in enumerate(slots):
            if s in visited or not approvers[a].has(group):
                continue
            visited.add(s)
            current = owner[s]
            if current is None or assign(current, visited):
                owner[s] = a
                return True
        return False

    for a in range(len(approvers)):
        assign(a, set())
    return owner


def describe(requirements: Sequence[ApprovalRequirement]) -> str:
    return " and ".join(f"{r.count} from {r.group}" for r in requirements)


def describe_missing(requirements: Sequence[ApprovalRequirement], approvers: Sequence[User]) -> str:
    """What a request still needs, e.g. "1 more from treasury and 1 more from risk"."""
    return " and ".join(f"{n} more from {g}" for g, n in missing(requirements, approvers))
