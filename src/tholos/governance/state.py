"""A node's governance state and the only ways to change it: adopt a document, engage the switch.

States are immutable: `apply_document` and `engage_kill_switch` return a new state or raise, so a
refused document leaves the node's state exactly as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from pydantic import ValidationError

from tholos.governance import _keys
from tholos.governance.documents import DocumentSignature, GovernanceDocument, SignedDocument
from tholos.governance.errors import (
    InvalidDocument,
    InvalidSignature,
    QuorumNotMet,
    VersionConflict,
)
from tholos.governance.killswitch import SignedKillSwitch
from tholos.governance.policy import Policy
from tholos.governance.users import Registry


@dataclass(frozen=True)
class KillSwitch:
    """The engaged kill switch: who engaged it, when and why."""

    engaged_by: str
    issued_at: int
    reason: str
    governance_version: int


@dataclass(frozen=True, eq=False)
class GovernanceState:
    """The adopted document with everything evaluation needs parsed and cached."""

    document: GovernanceDocument
    hash: bytes
    registry: Registry
    key_wallet: Mapping[str, str]
    kill_switch: KillSwitch | None = None
    released_at_version: int = 0

    @property
    def version(self) -> int:
        return self.document.version

    @property
    def cluster_id(self) -> str:
        return self.document.cluster_id

    @property
    def policy(self) -> Policy:
        return self.document.policy

    @classmethod
    def _from_document(
        cls,
        document: GovernanceDocument,
        kill_switch: KillSwitch | None,
        released_at_version: int,
    ) -> GovernanceState:
        key_wallet = {k: w for w, keys in document.policy.wallets.items() for k in keys}
        return cls(
            document=document,
            hash=document.digest(),
            registry=Registry(document.users),
            key_wallet=MappingProxyType(key_wallet),
            kill_switch=kill_switch,
            released_at_version=released_at_version,
        )


class AdminSigned(Protocol):
    """What an admin quorum signs: a governance document or a key change."""

    def signing_message(self) -> bytes: ...


def _parse(signed: SignedDocument | bytes) -> SignedDocument:
    if isinstance(signed, SignedDocument):
        return signed
    try:
        return SignedDocument.model_validate_json(signed)
    except ValidationError as exc:
        raise InvalidDocument(f"malformed governance document: {exc}") from exc


def _check_consistency(document: GovernanceDocument) -> None:
    """Refuse a document whose rules could never be satisfied by its own users (lock-out)."""
    registry = Registry(document.users)
    for rule in document.policy.rules:
        for req in rule.approvals:
            able = [u for u in registry.with_role(req.group) if "approver" in u.roles]
            if len(able) < req.count:
                raise InvalidDocument(
                    f"rule {rule.rule_id} needs {req.count} approvers from {req.group}, "
                    f"only {len(able)} exist"
                )


def verify_admin_quorum(
    registry: Registry,
    quorum: int,
    document: AdminSigned,
    signatures: Sequence[DocumentSignature],
) -> None:
    """Check that `quorum` distinct admins of `registry` signed `document` (or a key change);
    raise otherwise.

    Every signature must be valid and from an admin: a bad one is refused, not skipped, so that
    tampering is reported rather than hidden.
    """
    message = document.signing_message()
    signers: set[str] = set()
    for sig in signatures:
        if sig.signer in signers:
            raise InvalidSignature(f"duplicate signature from {sig.signer}")
        user = registry.get(sig.signer)
        if user is None or "admin" not in user.roles:
            raise InvalidSignature(f"{sig.signer} is not an admin of the current registry")
        _keys.verify(registry.key(sig.signer), sig.signature, message, sig.signer)
        signers.add(sig.signer)
    if len(signers) < quorum:
        raise QuorumNotMet(f"{len(signers)} admin signatures, quorum is {quorum}")


def load_genesis(
    signed: SignedDocument | bytes, expected_hash: bytes | None = None
) -> GovernanceState:
    """The state every node starts from: the genesis document, self-signed by its admin quorum.

    `expected_hash` (fixed at the key ceremony) pins exactly which genesis the node accepts.
    """
    parsed = _parse(signed)
    document = parsed.document
    if document.kind != "genesis":
        raise InvalidDocument("not a genesis document")
    if expected_hash is not None and document.digest() != expected_hash:
        raise InvalidDocument("genesis hash differs from the pinned one")
    _check_consistency(document)
    registry = Registry(document.users)
    verify_admin_quorum(registry, document.admin_quorum, document, parsed.signatures)
    return GovernanceState._from_document(document, kill_switch=None, released_at_version=0)


def apply_document(state: GovernanceState, signed: SignedDocument | bytes) -> GovernanceState:
    """Adopt the direct successor of the current document, or raise and change nothing.

    Accepted only if: same cluster; version == current + 1 and prev_hash == current hash (no
    replay, rollback, reordering or fork); `admin_quorum` of the CURRENT registry's admins signed
    it (the new document cannot vouch for itself); and it is consistent.
    """
    parsed = _parse(signed)
    document = parsed.document
    if document.kind != "governance":
        raise InvalidDocument("only governance documents follow the genesis")
    if document.cluster_id != state.cluster_id:
        raise InvalidDocument(f"document for cluster {document.cluster_id}")
    if document.version != state.version + 1:
        raise VersionConflict(f"version {document.version} is not the successor of {state.version}")
    if bytes.fromhex(document.prev_hash or "") != state.hash:
        raise VersionConflict("prev_hash does not link to the current document")
    verify_admin_quorum(state.registry, state.document.admin_quorum, document, parsed.signatures)
    _check_consistency(document)
    if document.release_kill_switch:
        return GovernanceState._from_document(document, None, document.version)
    return GovernanceState._from_document(document, state.kill_switch, state.released_at_version)


def apply_documents(
    state: GovernanceState, documents: Sequence[SignedDocument | bytes]
) -> GovernanceState:
    """Catch up through several successive documents; all-or-nothing."""
    for doc in documents:
        state = apply_document(state, doc)
    return state


def engage_kill_switch(state: GovernanceState, signed: SignedKillSwitch | bytes) -> GovernanceState:
    """Engage the kill switch on one authorised user's signature; raise and change nothing if not.

    The signer needs a role or group in `policy.kill_switch_roles`. The document must be issued at
    a governance version >= the last release and <= the current one (no replay after a release).
    """
    if not isinstance(signed, SignedKillSwitch):
        try:
            signed = SignedKillSwitch.model_validate_json(signed)
        except ValidationError as exc:
            raise InvalidDocument(f"malformed kill switch document: {exc}") from exc
    engage = signed.engage
    if engage.cluster_id != state.cluster_id:
        raise InvalidDocument(f"kill switch for cluster {engage.cluster_id}")
    if not state.released_at_version <= engage.governance_version <= state.version:
        raise VersionConflict(
            f"kill switch issued at version {engage.governance_version}; valid are "
            f"{state.released_at_version}..{state.version}"
        )
    user = state.registry.get(engage.signer)
    if user is None or not any(user.has(r) for r in state.policy.kill_switch_roles):
        raise InvalidSignature(f"{engage.signer} may not engage the kill switch")
    _keys.verify(
        state.registry.key(engage.signer), signed.signature, engage.signing_message(), engage.signer
    )
    if state.kill_switch is not None:
        return state
    switch = KillSwitch(engage.signer, engage.issued_at, engage.reason, engage.governance_version)
    return GovernanceState(
        document=state.document,
        hash=state.hash,
        registry=state.registry,
        key_wallet=state.key_wallet,
        kill_switch=switch,
        released_at_version=state.released_at_version,
    )


def replay(
    genesis: SignedDocument | bytes,
    events: Sequence[SignedDocument | SignedKillSwitch],
    expected_genesis_hash: bytes | None = None,
) -> GovernanceState:
    """Rebuild a node's state at start from its stored genesis and accepted events, in order.

    The node stores every document and kill switch it adopted, in adoption order; replaying them
    re-runs every check, so a tampered store fails loudly instead of loading a forged state.
    """
    state = load_genesis(genesis, expected_genesis_hash)
    for event in events:
        if isinstance(event, SignedKillSwitch):
            state = engage_kill_switch(state, event)
        else:
            state = apply_document(state, event)
    return state
