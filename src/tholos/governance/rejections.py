"""Rejections: an approver's signed "no" to one request, after which no node ever signs it.

An approver whose group the request's rules ask approvals from signs "tholos/rejection/v1" ||
digest with their own key. Every node checks the rejection itself (`verify_rejection`) and then
records the request refused in its journal for good (a refusal is final there), so no approvals
gathered later can get it signed. Like an approval, a rejection names one request and its digest:
it cannot be moved to another request.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.governance import _keys
from tholos.governance._model import FORMAT_VERSION, Hex32, Hex64, Model, Name
from tholos.governance.decision import Refuse
from tholos.governance.errors import InvalidSignature
from tholos.governance.requests import RequestId, SigningRequest
from tholos.governance.state import GovernanceState
from tholos.governance.users import User

REJECTION_TAG = b"tholos/rejection/v1"


class Rejection(Model):
    """One approver's signature refusing a request, over its digest."""

    format: Literal[1] = FORMAT_VERSION
    kind: Literal["rejection"] = "rejection"
    request_id: RequestId
    approver: Name
    digest: Hex32
    signature: Hex64

    def signing_message(self) -> bytes:
        return REJECTION_TAG + bytes.fromhex(self.digest)


def reject(request: SigningRequest, approver: str, key: Ed25519PrivateKey) -> Rejection:
    """An approver's rejection of a request, as the approver's own device makes it."""
    digest = request.digest()
    return Rejection(
        request_id=request.intent.request_id,
        approver=approver,
        digest=digest.hex(),
        signature=_keys.sign(key, REJECTION_TAG + digest),
    )


def verify_rejection(
    state: GovernanceState,
    request: SigningRequest,
    rejection: Rejection,
    approving_groups: Collection[str],
) -> User | Refuse:
    """The user whose rejection of this exact request verifies, or why it is refused.

    `approving_groups` are the groups the rules that apply to the request ask approvals from
    (the node's own evaluation): only a member of one of them may reject. The initiator may not
    reject (they cancel instead)."""
    who = rejection.approver
    intent = request.intent
    if request.cluster_id != state.cluster_id:
        return Refuse("cluster", f"request for cluster {request.cluster_id}")
    if rejection.request_id != intent.request_id or rejection.digest != request.digest().hex():
        return Refuse("rejection", f"rejection by {who} is for another request")
    if who == intent.initiator:
        return Refuse("rejection", f"{who} initiated the request: cancel it instead")
    user = state.registry.get(who)
    if user is None or "approver" not in user.roles:
        return Refuse("rejection", f"{who} is not an approver")
    if not approving_groups:
        return Refuse("rejection", "no rule of this request asks for approvals")
    if not any(user.has(g) for g in approving_groups):
        groups = ", ".join(sorted(approving_groups))
        return Refuse("rejection", f"{who} is not an approver of this request (groups: {groups})")
    try:
        _keys.verify(state.registry.key(who), rejection.signature, rejection.signing_message(), who)
    except InvalidSignature:
        return Refuse("rejection", f"rejection signature of {who} does not verify")
    return user
