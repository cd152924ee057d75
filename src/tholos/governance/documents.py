"""Governance documents: the genesis and every later change, signed by an admin quorum.

A document is a full snapshot (users, admin quorum, policy), so a node's state after adopting it
does not depend on history beyond the hash link. Signatures are over
    "tholos/governance/v1" || SHA-256(canonical(document)).
"""

from __future__ import annotations

from typing import Annotated, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, model_validator

from tholos.governance import _keys
from tholos.governance._canonical import tagged_digest
from tholos.governance._model import FORMAT_VERSION, Hex32, Hex64, Model, Name, UnixTime
from tholos.governance.policy import Policy
from tholos.governance.users import User

DOCUMENT_TAG = b"tholos/governance/v1"
SIGNATURE_TAG = b"tholos/governance/v1/signature"


class GovernanceDocument(Model):
    """Users, admin quorum and policy at `version`; `prev_hash` links to the document it replaces."""

    format: Literal[1] = FORMAT_VERSION
    kind: Literal["genesis", "governance"]
    cluster_id: Name
    version: Annotated[int, Field(ge=0)]
    prev_hash: Hex32 | None
    issued_at: UnixTime
    users: tuple[User, ...]
    admin_quorum: Annotated[int, Field(ge=1)]
    policy: Policy
    release_kill_switch: bool = False
    note: str = ""

    @model_validator(mode="after")
    def _check(self) -> GovernanceDocument:
        if self.kind == "genesis" and (self.version != 0 or self.prev_hash is not None):
            raise ValueError("genesis has version 0 and no prev_hash")
        if self.kind == "governance" and (self.version == 0 or self.prev_hash is None):
            raise ValueError("a governance document has version >= 1 and a prev_hash")
        ids = [u.user_id for u in self.users]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate user ids")
        admins = sum(1 for u in self.users if "admin" in u.roles)
        if admins < self.admin_quorum:
            raise ValueError(f"admin quorum {self.admin_quorum} but only {admins} admins")
        return self

    def digest(self) -> bytes:
        """SHA-256 of the canonical document: what `prev_hash` of its successor holds."""
        return tagged_digest(DOCUMENT_TAG, self.canonical())

    def signing_message(self) -> bytes:
        return SIGNATURE_TAG + self.digest()


class DocumentSignature(Model):
    """One admin's Ed25519 signature over a document."""

    signer: Name
    signature: Hex64


class SignedDocument(Model):
    """A governance document with its admin signatures, as it travels through the gateway."""

    document: GovernanceDocument
    signatures: tuple[DocumentSignature, ...]


def sign_document(
    document: GovernanceDocument, signer: str, key: Ed25519PrivateKey
) -> DocumentSignature:
    """An admin's signature over a document (done on the admin's own device)."""
    return DocumentSignature(signer=signer, signature=_keys.sign(key, document.signing_message()))
