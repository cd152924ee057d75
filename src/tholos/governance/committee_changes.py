"""Committee changes in a governed cluster: the new holders and threshold, signed by an admin quorum.

A `CommitteeChange` names the cluster, the governance version it was issued at, the new members
(node ids), the new threshold (or none: each key keeps its own), the keys it covers (or none: every
key), optionally the nodes' new minimum threshold, and a random nonce. Every node (old holders
and new members) checks it itself against its own governance state before it deals or receives,
and refuses a reshare that differs from it in members, threshold or key. A node applies one
document to a key once (the node keeps (nonce, key)), so it cannot be replayed to move a key back.
Signatures are over SHA-256("tholos/committee-change/v1" || 0 || canonical(change)), a tag no other
governance object uses.
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

COMMITTEE_CHANGE_TAG = b"tholos/committee-change/v1"
NodeId = Annotated[int, Field(ge=1, le=64)]


class CommitteeChange(Model):
    """Move `keys` (None: every key) to `members` with `threshold` (None: each key's own),
    decided by the admins of governance version `governance_version`; valid from `issued_at`
    (less clock skew) to `expires_at`. `min_threshold`, when set, becomes the nodes' minimum."""

    format: Literal[1] = FORMAT_VERSION
    kind: Literal["committee_change"] = "committee_change"
    cluster_id: Name
    governance_version: Annotated[int, Field(ge=0)]
    members: Annotated[tuple[NodeId, ...], Field(min_length=1, max_length=64)]
    threshold: Annotated[int, Field(ge=1, le=64)] | None
    keys: Annotated[tuple[Name, ...], Field(min_length=1, max_length=100_000)] | None
    min_threshold: Annotated[int, Field(ge=1, le=64)] | None = None
    nonce: Hex32
    issued_at: UnixTime
    expires_at: UnixTime
    reason: Annotated[str, Field(max_length=500)] = ""

    @model_validator(mode="after")
    def _check(self) -> CommitteeChange:
        if list(self.members) != sorted(set(self.members)):
            raise ValueError("members must be sorted node ids, each once")
        if self.keys is not None and list(self.keys) != sorted(set(self.keys)):
            raise ValueError("keys must be sorted key ids, each once")
        if self.threshold is not None and self.threshold > len(self.members):
            raise ValueError(f"threshold {self.threshold} > {len(self.members)} members")
        if self.min_threshold is not None:
            if self.threshold is not None and self.min_threshold > self.threshold:
                raise ValueError("min_threshold must not exceed the threshold")
            if self.min_threshold > len(self.members):
                raise ValueError("min_threshold must not exceed the number of members")
        check_lifetime(self.issued_at, self.expires_at)
        return self

    def covers(self, key_id: str) -> bool:
        return self.keys is None or key_id in self.keys

    def digest(self) -> bytes:
        return tagged_digest(COMMITTEE_CHANGE_TAG, self.canonical())

    def signing_message(self) -> bytes:
        return self.digest()


class SignedCommitteeChange(Model):
    """A committee change with its admin signatures, as it travels through the gateway."""

    change: CommitteeChange
    signatures: Annotated[tuple[DocumentSignature, ...], Field(max_length=64)]


def new_committee_change(
    cluster_id: str,
    governance_version: int,
    members: list[int],
    threshold: int | None,
    now: int,
    *,
    keys: list[str] | None = None,
    min_threshold: int | None = None,
    lifetime: int = 86_400,
    reason: str = "",
) -> CommitteeChange:
    """An unsigned committee change (issue it at the cluster's current version), fresh nonce."""
    return CommitteeChange(
        cluster_id=cluster_id,
        governance_version=governance_version,
        members=tuple(sorted(set(members))),
        threshold=threshold,
        keys=None if keys is None else tuple(sorted(set(keys))),
        min_threshold=min_threshold,
        nonce=os.urandom(32).hex(),
        issued_at=now,
        expires_at=now + lifetime,
        reason=reason,
    )


def sign_committee_change(
    change: CommitteeChange, signer: str, key: Ed25519PrivateKey
) -> DocumentSignature:
    """One admin's signature over a committee change (made on the admin's own device)."""
    return DocumentSignature(signer=signer, signature=_keys.sign(key, change.signing_message()))


def add_signature(
    signed: SignedCommitteeChange, signature: DocumentSignature
) -> SignedCommitteeChange:
    """`signed` with one more signature (replacing an earlier one of the same signer)."""
    return SignedCommitteeChange(
        change=signed.change, signatures=with_signature(signed.signatures, signature)
    )


def verify_committee_change(
    state: GovernanceState,
    signed: SignedCommitteeChange,
    key_id: str,
    members: list[int],
    threshold: int,
    old_threshold: int,
    now: int,
) -> CommitteeChange:
    """Check a committee change for this node's state and the reshare of `key_id` it is asked
    to run (to `members` at `threshold`, from a package at `old_threshold`); raise a
    GovernanceError naming what is wrong. Replay (nonce already applied to the key) and the
    minimum threshold are the caller's checks."""
    change = signed.change
    if change.cluster_id != state.cluster_id:
        raise InvalidDocument(f"committee change for cluster {change.cluster_id}")
    if not change.covers(key_id):
        raise InvalidDocument(f"committee change does not cover key {key_id}")
    if list(change.members) != sorted(members):
        raise InvalidDocument(
            f"committee change names members {list(change.members)}, not {sorted(members)}"
        )
    want = old_threshold if change.threshold is None else change.threshold
    if threshold != want:
        raise InvalidDocument(
            f"committee change sets threshold {want} for {key_id}, not {threshold}"
        )
    check_current_and_signed(state, change, signed.signatures, "committee change", now)
    return change
