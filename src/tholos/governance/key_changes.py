"""Key changes in a governed cluster: disable, enable or destroy one key, signed by an admin quorum.

A `KeyChange` names the cluster, the governance version it was issued at, one key, one action and
a random nonce. Every node checks it itself against its own governance state (quorum of the
current registry's admins, same version, not expired, the key and action it is asked to apply)
and records the nonce before answering, so the document cannot be replayed (an old "disable"
after an "enable"). Signatures are over SHA-256("tholos/key-change/v1" || 0 || canonical(change)),
a tag no governance document, approval or kill switch uses.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, model_validator

from tholos.governance import _keys
from tholos.governance._canonical import tagged_digest
from tholos.governance._model import FORMAT_VERSION, Hex32, Model, Name, UnixTime
from tholos.governance.admin_changes import (
    MAX_LIFETIME as MAX_LIFETIME,  # re-exported: the CLI and tests name it here
)
from tholos.governance.admin_changes import (
    check_current_and_signed,
    check_lifetime,
    with_signature,
)
from tholos.governance.documents import DocumentSignature
from tholos.governance.errors import InvalidDocument
from tholos.governance.state import GovernanceState

KEY_CHANGE_TAG = b"tholos/key-change/v1"
KeyAction = Literal["disable", "enable", "destroy"]
ACTIONS: tuple[KeyAction, ...] = ("disable", "enable", "destroy")


class KeyChange(Model):
    """Apply `action` to key `key_id`, decided by the admins of governance version
    `governance_version`; valid from `issued_at` (less clock skew) to `expires_at`."""

    format: Literal[1] = FORMAT_VERSION
    kind: Literal["key_change"] = "key_change"
    cluster_id: Name
    governance_version: Annotated[int, Field(ge=0)]
    key_id: Name
    action: KeyAction
    nonce: Hex32
    issued_at: UnixTime
    expires_at: UnixTime
    reason: Annotated[str, Field(max_length=500)] = ""

    @model_validator(mode="after")
    def _check(self) -> KeyChange:
        check_lifetime(self.issued_at, self.expires_at)
        return self

    def digest(self) -> bytes:
        return tagged_digest(KEY_CHANGE_TAG, self.canonical())

    def signing_message(self) -> bytes:
        return self.digest()


class SignedKeyChange(Model):
    """A key change with its admin signatures, as it travels through the gateway to every node."""

    change: KeyChange
    signatures: Annotated[tuple[DocumentSignature, ...], Field(max_length=64)]


def new_key_change(
    cluster_id: str,
    governance_version: int,
    key_id: str,
    action: KeyAction,
    now: int,
    lifetime: int = 86_400,
    reason: str = "",
) -> KeyChange:
    """An unsigned key change (issue it at the cluster's current version), with a fresh nonce."""
    return KeyChange(
        cluster_id=cluster_id,
        governance_version=governance_version,
        key_id=key_id,
        action=action,
        nonce=os.urandom(32).hex(),
        issued_at=now,
        expires_at=now + lifetime,
        reason=reason,
    )


def sign_key_change(change: KeyChange, signer: str, key: Ed25519PrivateKey) -> DocumentSignature:
    """One admin's signature over a key change (made on the admin's own device)."""
    return DocumentSignature(signer=signer, signature=_keys.sign(key, change.signing_message()))


def add_signature(signed: SignedKeyChange, signature: DocumentSignature) -> SignedKeyChange:
    """`signed` with one more signature (replacing an earlier one of the same signer)."""
    return SignedKeyChange(
        change=signed.change, signatures=with_signature(signed.signatures, signature)
    )


def verify_key_change(
    state: GovernanceState, signed: SignedKeyChange, key_id: str, action: str, now: int
) -> KeyChange:
    """Check a key change for this node's state and the change it is asked to make; raise a
    GovernanceError naming what is wrong (nothing is changed here). Replay is the caller's
    check: it must also refuse a nonce it has already applied."""
    change = signed.change
    if change.cluster_id != state.cluster_id:
        raise InvalidDocument(f"key change for cluster {change.cluster_id}")
    if change.key_id != key_id:
        raise InvalidDocument(f"key change names key {change.key_id}, not {key_id}")
    if change.action != action:
        raise InvalidDocument(f"key change is a {change.action}, not a {action}")
    check_current_and_signed(state, change, signed.signatures, "key change", now)
    return change
