"""Committee changes on a governed node: a reshare runs only under the admins' committee change.

Every session of a governed reshare carries a `SignedCommitteeChange`
(tholos.governance.committee_changes). At round 1 the node checks it against its own governance
state and the session it is asked to join (members, threshold, key, not already applied, not
below the minimum threshold it allows) before dealing or receiving; at finish, before its new
share is prepared or its old one marked for retirement, it records (nonce, key) durably, stores
the document's new minimum threshold if it sets one, and appends the change to its audit chain.
Commit and retire need no document: they only act on a batch that this node finished under one.
Refusals are audited too, and change nothing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tholos.audit import KIND_GOVERNANCE
from tholos.governance import GovernanceError
from tholos.governance._canonical import canonical_json
from tholos.governance.committee_changes import SignedCommitteeChange, verify_committee_change
from tholos.node.governance import NodeGovernance
from tholos.node.protocols import ProtocolError, ProtocolRunner
from tholos.rpc import node_pb2 as pb

log = logging.getLogger("tholos.node.governance")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS committee_changes (
    nonce TEXT NOT NULL,
    key_id TEXT NOT NULL,
    batch TEXT NOT NULL,
    PRIMARY KEY (nonce, key_id)
);
CREATE TABLE IF NOT EXISTS committee_documents (
    nonce TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS committee_settings (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class _Authorised:
    """A reshare batch this node accepted at round 1, and the document that authorised it."""

    signed: SignedCommitteeChange
    keys: tuple[str, ...]


class CommitteeGovernance:
    """The committee-change checks of one governed node, and their durable records."""

    def __init__(self, gov: NodeGovernance, runner: ProtocolRunner) -> None:
        self.gov = gov
        self.runner = runner
        self._lock = gov._lock  # one writer on governance.db at a time
        self._batches: dict[str, _Authorised] = {}
        self._db: sqlite3.Connection = gov._db  # the node's governance.db (WAL, synchronous=FULL)
        with self._lock:
            self._db.executescript(_SCHEMA)
        stored = self.min_threshold()
        if stored is not None:
            runner.min_threshold = stored

    def min_threshold(self) -> int | None:
        """The minimum threshold the admins last set (None: the node config's stands)."""
        row = self._db.execute(
            "SELECT value FROM committee_settings WHERE name = 'min_threshold'"
        ).fetchone()
        return None if row is None else int(row[0])

    def applied(self, nonce: str, key_id: str) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM committee_changes WHERE nonce = ? AND key_id = ?", (nonce, key_id)
            ).fetchone()
            is not None
        )

    # -- the reshare phases ----------------------------------------------------------------------
    def step(self, req: pb.ProtocolRequest) -> pb.ProtocolReply:
        """One phase of a governed reshare: checks first, then the runner's step."""
        if req.phase == "round1":
            return self._round1(req)
        if req.phase == "finish":
            return self._finish(req)
        return self.runner.step(req)

    def _refuse(self, reason: str, **fields: Any) -> ProtocolError:
        self.gov.audit.append(
            KIND_GOVERNANCE, {"event": "committee_change-refused", **fields, "reason": reason[:500]}
        )
        log.warning("committee change refused: %s", reason)
        return ProtocolError(f"committee change refused: {reason}")

    def _round1(self, req: pb.ProtocolRequest) -> pb.ProtocolReply:
        body = json.loads(req.payload or b"{}")
        batch = str(body.get("batch", ""))
        sessions = body.get("sessions")
        if not batch or not isinstance(sessions, list) or not sessions:
            raise ProtocolError("a reshare round 1 names its batch and sessions")
        state = self.gov.state
        assert state is not None
        now = self.gov._now()
        docs: dict[str, str] = {}
        keys: list[str] = []
        first: SignedCommitteeChange | None = None
        for s in sessions:
            key_id = str(s.get("session", ""))
            raw = s.get("change")
            if raw is None:
                raise self._refuse(
                    f"a committee change of key {key_id} in a governed cluster needs a "
                    "committee change document signed by the admin quorum "
                    "(`tholos cluster committee-change`): the keys are unchanged",
                    key_id=key_id,
                    batch=batch,
                )
            try:
                signed = SignedCommitteeChange.model_validate_json(canonical_json(raw))
                change = verify_committee_change(
                    state,
                    signed,
                    key_id,
                    [int(m) for m in s["members"]],
                    int(s["threshold"]),
                    int(s["public"]["threshold"]),
                    now,
                )
            except (ValidationError, ValueError, KeyError, TypeError, GovernanceError) as exc:
                raise self._refuse(
                    f"{type(exc).__name__}: {exc}", key_id=key_id, batch=batch
                ) from None
            docs[change.nonce] = signed.model_dump_json()
            if len(docs) > 1:
                raise self._refuse("one batch, one committee change document", batch=batch)
            if self.applied(change.nonce, key_id):
                raise self._refuse(
                    f"committee change {change.nonce} was already applied to key {key_id} on "
                    "this node (replay): the key is unchanged",
                    key_id=key_id,
                    nonce=change.nonce,
                )
            floor = (
                self.runner.min_threshold if change.min_threshold is None else change.min_threshold
            )
            if int(s["threshold"]) < floor:
                raise self._refuse(
                    f"threshold {s['threshold']} of {key_id} is below this node's minimum {floor}",
                    key_id=key_id,
                    nonce=change.nonce,
                )
            keys.append(key_id)
            first = signed
        assert first is not None
        with self._lock:
            self.runner.authorised_min[batch] = (
                first.change.min_threshold
                if first.change.min_threshold is not None
                else self.runner.min_threshold
            )
        try:
            reply = self.runner.step(req)
        finally:
            self.runner.authorised_min.pop(batch, None)
        with self._lock:
            for gone in [b for b in self._batches if b not in self.runner.batches]:
                del self._batches[gone]  # expired or failed batches of the runner
            self._batches[batch] = _Authorised(first, tuple(keys))
        return reply

    def _finish(self, req: pb.ProtocolRequest) -> pb.ProtocolReply:
        body = json.loads(req.payload or b"{}")
        batch = str(body.get("batch", ""))
        with self._lock:
            auth = self._batches.pop(batch, None)
            if auth is None:
                raise ProtocolError(f"no governed reshare batch {batch} in progress on this node")
            change = auth.signed.change
            again = [k for k in auth.keys if self.applied(change.nonce, k)]
            if again:
                raise self._refuse(
                    f"committee change {change.nonce} was already applied to keys {again} on "
                    "this node (replay): the keys are unchanged",
                    nonce=change.nonce,
                )
            reply = self.runner.step(req)
            with self._db:
                self._db.executemany(
                    "INSERT INTO committee_changes (nonce, key_id, batch) VALUES (?, ?, ?)",
                    [(change.nonce, k, batch) for k in auth.keys],
                )
                self._db.execute(
                    "INSERT OR IGNORE INTO committee_documents (nonce, body) VALUES (?, ?)",
                    (change.nonce, auth.signed.model_dump_json()),
                )
                if change.min_threshold is not None:
                    self._db.execute(
                        "INSERT INTO committee_settings (name, value) VALUES ('min_threshold', ?) "
                        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                        (change.min_threshold,),
                    )
            if change.min_threshold is not None:
                self.runner.min_threshold = change.min_threshold
        self.gov.audit.append(
            KIND_GOVERNANCE,
            {
                "event": "committee_change",
                "batch": batch,
                "nonce": change.nonce,
                "digest": change.digest().hex(),
                "governance_version": change.governance_version,
                "keys": list(auth.keys),
                "members": list(change.members),
                "threshold": change.threshold,
                "min_threshold": change.min_threshold,
                "signers": sorted(s.signer for s in auth.signed.signatures),
            },
        )
        log.warning(
            "committee change %s: %d keys to members %s by admin quorum",
            change.nonce,
            len(auth.keys),
            list(change.members),
        )
        return reply


def for_service(service: Any) -> CommitteeGovernance:
    """The service's CommitteeGovernance (governed nodes only), created on first use."""
    found: CommitteeGovernance | None = getattr(service, "_committee_governance", None)
    if found is None:
        found = CommitteeGovernance(service.governance, service.protocols)
        service._committee_governance = found
    return found
