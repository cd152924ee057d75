"""Governed signing at the gateway: it only carries signed objects between users and nodes.

The gateway is untrusted for policy: every node re-checks everything. What it does:
- relays governance documents (admin-quorum signed), kill switches and proposals being signed;
- for a signing request: reserves it on every node holding the key (step 1, one batched
  `Governance/reserve` per node), asks a read quorum for snapshots bound to the receipts (step 2),
  and sends the request, approvals, receipts and snapshots to `t` signers among the nodes holding
  the reservation (step 3, `SignBatch` with the `governance` field), retrying on other nodes
  when a signer fails. A request that misses its write quorum is refused on every node
  (tombstones release it);
- appends every signature it releases to its own audit chain (`signature_released`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import fields
from pathlib import Path
from typing import Any

from tholos.audit import KIND_GOVERNANCE, AuditLog
from tholos.chains.base import DerivedIntent
from tholos.gateway import chain_targets, governed_rounds, request_outcomes
from tholos.gateway.database import StoreUnavailable
from tholos.gateway.request_status import (
    AWAITING_APPROVAL,
    CANCELLED,
    CREATED,
    EXPIRED,
    OPEN,
    POLICY_REFUSED,
    REFUSED,
    REJECTED,
    RESERVED,
    SIGNED,
    classify,
    expire,
)
from tholos.gateway.rounds import GOVERNANCE_TIMEOUT
from tholos.gateway.service import Gateway, GatewayError, check_options
from tholos.gateway.signing_claims import DEFAULT_LEASE, SigningClaims
from tholos.gateway.tracked import Tracked, is_pending, refusal
from tholos.gateway.transport import NodeRefused, NodeUnavailable
from tholos.governance import Approval, SigningRequest, read_user_key
from tholos.governance._keys import public_key_from_hex, verify
from tholos.governance.errors import InvalidSignature
from tholos.governance.quorum import quorums
from tholos.governance.rejections import Rejection
from tholos.governance.requests import CANCEL_TAG
from tholos.rpc import node_pb2 as pb

log = logging.getLogger("tholos.gateway")
KEEP_TRIES = 60


class GovernedSigning:
    """Gateway side of governance. One per Gateway (see `governed(gw)`)."""

    def __init__(
        self, gw: Gateway, audit: AuditLog | None, signing_lease: float = DEFAULT_LEASE
    ) -> None:
        self.gw = gw
        self.audit = audit
        self.db = gw.store.db
        self._caching = not self.db.shared  # another gateway may change a shared row
        self.claims = SigningClaims(self.db, signing_lease)
        n = len(gw.nodes.ids)
        self.write_q, self.read_q, _ = quorums(n, gw.threshold)
        self._cache: dict[str, Tracked] = {}
        self._policy_checked = -1e9
        self._no_velocity = False

    # -- node calls ------------------------------------------------------------------------------
    async def call(self, node: int, op: str, payload: Any) -> dict[str, Any]:
        req = pb.GovernanceRequest(op=op, payload=json.dumps(payload).encode())
        rep = await self.gw.nodes.transport(node).governance(req, GOVERNANCE_TIMEOUT)
        out: dict[str, Any] = json.loads(rep.payload)
        return out

    async def broadcast(
        self, op: str, payload: Any, nodes: list[int] | None = None
    ) -> dict[int, dict[str, Any]]:
        """Call every node; per node its reply or {"error": ...}."""
        ids = self.gw.nodes.ids if nodes is None else nodes
        replies = await asyncio.gather(
            *(self.call(i, op, payload) for i in ids), return_exceptions=True
        )
        out: dict[int, dict[str, Any]] = {}
        for i, r in zip(ids, replies, strict=True):
            if isinstance(r, NodeRefused):
                out[i] = {"error": r.reason}
            elif isinstance(r, BaseException):
                out[i] = {"error": f"unavailable: {r}"}
            else:
                out[i] = r
        return out

    def _log(self, kind: str, payload: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit.append(kind, payload)

    # -- documents -------------------------------------------------------------------------------
    async def state(self) -> dict[str, Any]:
        states = await self.broadcast("state", {})
        versions = {i: s.get("version") for i, s in states.items() if "error" not in s}
        best = max(
            (s for s in states.values() if "document" in s),
            key=lambda s: int(s["version"]),
            default=None,
        )
        return {
            "nodes": {
                str(i): {k: v for k, v in s.items() if k != "document"} for i, s in states.items()
            },
            "versions": {str(k): v for k, v in versions.items()},
            "document": None if best is None else best["document"],
        }

    async def submit_document(self, signed: dict[str, Any]) -> dict[str, Any]:
        results = await self.broadcast("adopt", {"document": signed})
        adopted = sum(1 for r in results.values() if r.get("adopted") or r.get("already"))
        if adopted:
            from tholos.gateway import attestation

            attestation.policy_changed(self.gw)  # the pinned measurements may have changed
        self._log(
            KIND_GOVERNANCE,
            {
                "event": "document-relayed",
                "version": signed.get("document", {}).get("version"),
                "adopted_by": adopted,
            },
        )
        return {"adopted_by": adopted, "nodes": {str(i): r for i, r in results.items()}}

    async def kill_switch(self, signed: dict[str, Any]) -> dict[str, Any]:
        results = await self.broadcast("kill_switch", signed)
        engaged = sum(1 for r in results.values() if r.get("engaged"))
        self._log(KIND_GOVERNANCE, {"event": "kill-switch-relayed", "engaged_on": engaged})
        return {"engaged_on": engaged, "nodes": {str(i): r for i, r in results.items()}}

    def propose(self, document: dict[str, Any], signatures: list[dict[str, Any]]) -> dict[str, Any]:
        pid = str(document.get("version", 0)) + "-" + str(int(time.time() * 1000))
        with self.db:
            self.db.execute(
                "INSERT INTO governance_proposals VALUES (?,?,?,?,?,?)",
                (pid, json.dumps(document), json.dumps(signatures), "open", "{}", time.time()),
            )
        return self.proposal(pid)

    def proposal(self, pid: str) -> dict[str, Any]:
        row = self.db.execute(
            "SELECT proposal_id, document, signatures, status, detail, created "
            "FROM governance_proposals WHERE proposal_id = ?",
            (pid,),
        ).fetchone()
        if row is None:
            raise GatewayError(404, "unknown_proposal", f"unknown proposal {pid[:64]}")
        return {
            "proposal_id": row[0],
            "document": json.loads(row[1]),
            "signatures": json.loads(row[2]),
            "status": row[3],
            "detail": json.loads(row[4]),
            "created": row[5],
        }

    def proposals(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT proposal_id FROM governance_proposals ORDER BY created DESC LIMIT 100"
        ).fetchall()
        return [self.proposal(str(r[0])) for r in rows]

    async def sign_proposal(self, pid: str, signature: dict[str, Any]) -> dict[str, Any]:
        """Add one admin signature; once the nodes accept the document it is adopted."""
        prop = self.proposal(pid)
        sigs = [s for s in prop["signatures"] if s.get("signer") != signature.get("signer")]
        sigs.append(signature)
        result = await self.submit_document({"document": prop["document"], "signatures": sigs})
        status = "adopted" if result["adopted_by"] > 0 else "open"
        with self.db.transaction():  # keep signatures another gateway added meanwhile
            row = self.db.execute(
                "SELECT signatures, status FROM governance_proposals WHERE proposal_id = ?", (pid,)
            ).one()
            mine = {s.get("signer") for s in sigs}
            sigs += [s for s in json.loads(row[0]) if s.get("signer") not in mine]
            status = "adopted" if row[1] == "adopted" else status
            self.db.execute(
                "UPDATE governance_proposals SET signatures = ?, status = ?, detail = ? "
                "WHERE proposal_id = ?",
                (json.dumps(sigs), status, json.dumps(result), pid),
            )
        return self.proposal(pid)

    # -- signing requests ------------------------------------------------------------------------
    def _save(self, tracked: list[Tracked]) -> None:
        """Store the requests' state in ONE transaction (the store is in autocommit mode: without
        a transaction every row was its own commit, ~3x the CPU and the WAL writes).

        Each approval is also its own row (one per approver, never overwritten by a save that
        had not seen it: two gateways approving at once lose none), and a signed row is final:
        a gateway that lost the race to sign (the nodes refuse a request signed once) does not
        overwrite the signature another gateway stored; it reads it back instead."""
        now = time.time()
        with self.db.transaction():
            self.db.executemany(
                "INSERT INTO signing_approvals VALUES (?,?,?,?) "
                "ON CONFLICT (request_id, approver) DO UPDATE SET approval = excluded.approval",
                [
                    (t.request_id, a.approver, a.model_dump_json(), now)
                    for t in tracked
                    for a in t.approvals
                ],
            )
            self.db.executemany(
                "INSERT INTO signing_requests VALUES (?,?,?,?,?,?,?) ON CONFLICT(request_id) DO "
                "UPDATE SET approvals = excluded.approvals, status = excluded.status, "
                "detail = excluded.detail, updated = excluded.updated "
                "WHERE signing_requests.status != 'signed'",
                [
                    (
                        t.request_id,
                        t.request_json(),
                        t.approvals_json(),
                        t.status,
                        json.dumps(
                            {
                                "receipts": {str(k): v for k, v in t.receipts.items()},
                                "refusals": {str(k): v for k, v in t.refusals.items()},
                                "signers": t.signers,
                                "signature": t.signature,
                                "public_key": t.public_key,
                                "error": t.error,
                                "transaction": t.transaction,
                            }
                        ),
                        now,
                        now,
                    )
                    for t in tracked
                ],
            )
            request_outcomes.record(self.db, tracked)  # the outbox and nonces, same transaction
        if self.db.shared:
            self._adopt_signed([t for t in tracked if t.status != SIGNED])
        for t in tracked:
            if self._caching:
                self._cache[t.request_id] = t
                if len(self._cache) > 50_000:
                    self._cache.clear()

    async def _keep(self, tracked: list[Tracked]) -> None:
        """`_save` after the nodes were asked, waiting out a database outage (every 0.5 s for
        30 s): a node signs a request once, so a signature the gateway fails to store is lost."""
        for attempt in range(KEEP_TRIES):
            try:
                self._save(tracked)
                return
            except StoreUnavailable:
                if attempt == KEEP_TRIES - 1:
                    raise
                log.warning("database unavailable, %d results wait to be stored", len(tracked))
                await asyncio.sleep(0.5)

    def _adopt_signed(self, tracked: list[Tracked]) -> None:
        """Requests another gateway stored signed: take its state (the signature)."""
        by_id = {t.request_id: t for t in tracked}
        ids = list(by_id)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for (rid,) in self.db.execute(
                "SELECT request_id FROM signing_requests WHERE status = ? "
                f"AND request_id IN ({marks})",
                [SIGNED, *chunk],
            ):
                stored = self._load(str(rid))
                for f in fields(Tracked):
                    setattr(by_id[str(rid)], f.name, getattr(stored, f.name))

    def get(self, request_id: str) -> Tracked:
        t = self._cache.get(request_id)
        if t is not None:
            if expire(t):
                self._save([t])
            return t
        t = self._load(request_id)
        if self._caching:
            self._cache[request_id] = t
        if expire(t):
            self._save([t])
        return t

    def _load(self, request_id: str) -> Tracked:
        """The stored request with every approval stored for it (the approvals table first)."""
        row = self.db.execute(
            "SELECT request, approvals, status, detail FROM signing_requests WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        if row is None:
            raise GatewayError(404, "unknown_request", f"unknown signing request {request_id[:64]}")
        d = json.loads(row[3])
        approvals = {a["approver"]: json.dumps(a) for a in json.loads(row[1])}
        for approver, approval in self.db.execute(
            "SELECT approver, approval FROM signing_approvals WHERE request_id = ? "
            "ORDER BY created, approver",
            (request_id,),
        ):
            approvals[str(approver)] = str(approval)
        return Tracked(
            SigningRequest.model_validate_json(row[0]),
            [Approval.model_validate_json(a) for a in approvals.values()],
            str(row[2]),
            {int(k): v for k, v in d["receipts"].items()},
            {int(k): v for k, v in d["refusals"].items()},
            list(d["signers"]),
            d["signature"],
            d["public_key"],
            d["error"],
            d.get("transaction", {}),
        )

    def list_requests(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        q = "SELECT request_id FROM signing_requests"
        args: tuple[Any, ...] = ()
        if status:
            q += " WHERE status = ?"
            args = (status,)
        rows = self.db.execute(q + " ORDER BY created DESC LIMIT ?", (*args, limit)).fetchall()
        return [self.get(str(r[0])).summary() for r in rows]

    async def create(
        self,
        items: list[tuple[SigningRequest, list[Approval]]],
        execute: bool = True,
        each: bool = False,
    ) -> list[Tracked]:
        """Store and reserve new requests (batched); then try to sign those with approvals.
        A request whose transaction's nonce another request holds raises 409 `nonce_in_use`;
        with `each` (a batch) only that request is refused (`turned_away`, never stored) and the
        others go on."""
        tracked = []
        parsed: list[tuple[SigningRequest, DerivedIntent]] = []  # new chain transactions
        known = self._known([request.intent.request_id for request, _ in items])
        for request, approvals in items:
            rid = request.intent.request_id
            existing = self._exists(rid) if rid in known else None
            if existing is not None:
                if existing.request != request:
                    raise GatewayError(409, "conflict", f"request {rid} exists with another intent")
                # Stored "created" but never reserved: its gateway stopped before step 1 (or is
                # still at it); run it again, the nodes' reservations are idempotent per id.
                tracked.append(existing)
                continue
            row = self.gw.key(request.intent.key_id)  # 404 for an unknown key
            check_options(  # 400 option_not_for_scheme, e.g. a taproot tweak on an ecdsa key
                row.scheme,
                path=request.intent.derivation_path,
                taproot_tweak=request.intent.taproot,
                merkle_root=request.intent.merkle_root,
            )
            if request.intent.transaction is not None:
                # 400 naming the field: nobody could sign it
                parsed.append((request, chain_targets.parse(row, request)[1].intent))
            governed_rounds.check_request(self.gw, row, request)  # 400: cannot sign it
            tracked.append(Tracked(request, list(approvals)))
        # 409 if one is held (with `each`: that request alone is turned away)
        refused = request_outcomes.claim_nonces(self.gw.store.nonces, parsed, each)
        everything, tracked = tracked, []
        for t in everything:
            if t.status == CREATED and t.request_id in refused:
                t.status, t.turned_away = REFUSED, refused[t.request_id]
                t.error = str(t.turned_away)
            else:
                tracked.append(t)
        fresh = [t for t in tracked if t.status == "created"]
        # Shared store: stored before any node is asked, so a gateway killed from here on leaves
        # a request that another gateway finds by its id and completes (the nodes sign each id
        # at most once). One gateway on SQLite skips the extra commit: its retry starts afresh.
        if fresh and self.db.shared:
            self._save(fresh)
        tried: set[int] = set()  # signed directly in this call, with retries on other signers
        if fresh and execute and await self._velocity_free():
            # No velocity limit in the policy: no quorum journals needed. Each signer records
            # the request in its own journal as it signs (and refuses if a limit applies after
            # all, e.g. the policy changed meanwhile: then the full protocol runs).
            await self._execute_group(list(self.gw.nodes.ids), fresh, direct=True)
            retry = [t for t in fresh if t.status != "signed" and "write-quorum" in t.error]
            tried = {id(t) for t in fresh} - {id(t) for t in retry}
            fresh = retry
            for t in retry:
                t.status, t.error, t.refusals = "created", "", {}
        if fresh:
            await self._reserve(fresh)
        ready = [t for t in tracked if t.status == "reserved" and id(t) not in tried]
        if execute and ready:
            await self._execute(ready)
        await self._keep(tracked)
        return everything

    async def _velocity_free(self) -> bool:
        """True if the adopted policy has no velocity limit (cached for a second)."""
        now = time.monotonic()
        if now - self._policy_checked < 1.0:
            return self._no_velocity
        for i in self.gw.nodes.usable():
            try:
                st = await self.call(i, "state", {})
            except (NodeRefused, NodeUnavailable):
                continue
            doc = st.get("document")
            if doc is None:
                return False
            rules = doc["document"]["policy"]["rules"]
            self._no_velocity = not any(r.get("velocity") for r in rules)
            self._policy_checked = now
            return self._no_velocity
        return False

    def _known(self, request_ids: list[str]) -> set[str]:
        """Which of these request ids the gateway holds (cached, or one query per 500 ids)."""
        found = {rid for rid in request_ids if rid in self._cache}
        rest = [rid for rid in request_ids if rid not in found]
        for start in range(0, len(rest), 500):
            chunk = rest[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                str(r[0])
                for r in self.db.execute(
                    f"SELECT request_id FROM signing_requests WHERE request_id IN ({marks})", chunk
                )
            )
        return found

    def _exists(self, rid: str) -> Tracked | None:
        try:
            return self.get(rid)
        except GatewayError:
            return None

    async def approve(self, request_id: str, approval: Approval) -> Tracked:
        t = self.get(request_id)
        if approval.request_id != request_id:
            raise GatewayError(422, "bad_request", "approval is for another request")
        if approval in t.approvals and t.status == SIGNED:
            return t  # a retried approval (its gateway died, say): the signature it led to
        if t.status == SIGNED:
            raise GatewayError(409, "already_signed", "request is signed already")
        if t.status not in OPEN:
            raise GatewayError(409, "request_closed", f"request is {t.status}: {t.error}"[:300])
        t.approvals = [a for a in t.approvals if a.approver != approval.approver] + [approval]
        self._save([t])  # the approval is durable before any node is asked to sign
        if t.status in (RESERVED, AWAITING_APPROVAL):
            await self._execute([t])
        await self._keep([t])
        return t

    async def execute(self, request_id: str) -> Tracked:
        t = self.get(request_id)
        if t.status == CREATED:  # stored, then its gateway stopped (or is still at step 1)
            return (await self.create([(t.request, t.approvals)]))[0]
        if t.status in (RESERVED, AWAITING_APPROVAL):
            await self._execute([t])
            await self._keep([t])
        return t

    async def cancel(
        self, request_id: str, user: str, signature: str, admin: bool = False
    ) -> Tracked:
        """Withdraw a request not signed yet: by its initiator (Ed25519 over "tholos/cancel/v1"
        || digest, checked against the adopted user registry) or by an admin API client. The
        nodes tombstone it, so it no longer counts against any limit."""
        t = self.get(request_id)
        if t.status not in OPEN:
            code = "already_signed" if t.status == SIGNED else "request_closed"
            raise GatewayError(409, code, f"request is {t.status}, it cannot be cancelled")
        if not admin:
            if user != t.request.intent.initiator:
                raise GatewayError(
                    403, "not_initiator", f"only the initiator may cancel request {request_id}"
                )
            await self._check_initiator(t, user, signature)
        await self.broadcast(
            "refuse",
            {
                "requests": [t.request.model_dump(mode="json")],
                "reason": f"cancelled by {user or 'admin'}",
            },
            self._holders(t),
        )
        t.status, t.error = CANCELLED, f"cancelled by {user or 'an admin client'}"
        self._save([t])
        self._log(
            KIND_GOVERNANCE, {"event": "request-cancelled", "request_id": request_id, "by": user}
        )
        return t

    async def reject(self, request_id: str, rejection: Rejection) -> Tracked:
        """Relay an approver's signed rejection to every node holding the key. Each node checks
        it itself and refuses the request for good; once n - t + 1 holders did, fewer than t
        could ever sign it and it is `rejected`. Refused by every node: 403, nothing changes."""
        t = self.get(request_id)
        if rejection.request_id != request_id:
            raise GatewayError(422, "bad_request", "rejection is for another request")
        if t.status not in OPEN:
            code = "already_signed" if t.status == SIGNED else "request_closed"
            raise GatewayError(409, code, f"request is {t.status}, it cannot be rejected")
        holders = self._holders(t)
        body = {
            "request": t.request.model_dump(mode="json"),
            "rejection": rejection.model_dump(mode="json"),
        }
        replies = await self.broadcast("reject", body, holders)
        took = [i for i, r in replies.items() if r.get("rejected")]
        nodes = {str(i): r for i, r in replies.items()}
        if not took:
            down = all(str(r.get("error", "")).startswith("unavailable") for r in replies.values())
            if down:
                raise GatewayError(503, "unavailable", "no node answered", nodes=nodes)
            first = next(str(r["error"]) for r in replies.values() if "error" in r)
            raise GatewayError(403, "rejection_refused", first[:300], nodes=nodes)
        needed = len(holders) - self.gw.threshold + 1
        if len(took) < needed:
            raise GatewayError(
                503,
                "unavailable",
                f"rejection recorded on {len(took)} nodes, {needed} needed: send it again",
                nodes=nodes,
            )
        t.status, t.error = REJECTED, f"rejected by {rejection.approver}"
        for i in took:  # each node's verdict now: it will never sign this request
            t.refusals[i] = {"rule_id": "rejection", "reason": t.error}
        self._save([t])
        self._log(
            KIND_GOVERNANCE,
            {
                "event": "request-rejected",
                "request_id": request_id,
                "by": rejection.approver,
                "nodes": sorted(took),
            },
        )
        return t

    async def _check_initiator(self, t: Tracked, user: str, signature: str) -> None:
        """403 unless `signature` is the initiator's over the cancel message of this request."""
        doc = (await self.state())["document"]
        if doc is None:
            raise GatewayError(503, "unavailable", "no node answered with its governance state")
        keys = {u["user_id"]: u["public_key"] for u in doc["document"]["users"]}
        if user not in keys:
            raise GatewayError(403, "unknown_user", f"{user} is not a registered user")
        try:
            verify(
                public_key_from_hex(keys[user]), signature, CANCEL_TAG + t.request.digest(), user
            )
        except InvalidSignature as exc:
            raise GatewayError(403, "bad_signature", str(exc)) from None

    async def _reserve(self, tracked: list[Tracked]) -> None:
        """Step 1 on every node holding the keys: W pending receipts or a cluster-wide abort."""
        holders: set[int] = set()
        for t in tracked:
            holders |= set(self._holders(t))
        nodes = sorted(holders)
        payload = {"requests": [t.request.model_dump(mode="json") for t in tracked]}
        replies = await self.broadcast("reserve", payload, nodes)
        for i, rep in replies.items():
            if "error" in rep:
                for t in tracked:
                    t.refusals[i] = refusal(str(rep["error"]))
                continue
            for t, res in zip(tracked, rep["results"], strict=True):
                if "receipt" in res:
                    t.receipts[i] = res["receipt"]
                if "refused" in res:
                    t.refusals[i] = res["refused"]
        aborted = []
        for t in tracked:
            pending = [i for i, r in t.receipts.items() if is_pending(r)]
            if len(pending) >= self.write_q:
                t.status = "reserved"
            else:
                t.status = "refused"
                t.error = f"reserved on {len(pending)} nodes, the write quorum is {self.write_q}"
                aborted.append(t)
        if aborted:
            await self.broadcast(
                "refuse",
                {
                    "requests": [t.request.model_dump(mode="json") for t in aborted],
                    "reason": "write quorum missed",
                },
                nodes,
            )

    async def _sign(
        self,
        key_id: str,
        nodes: list[int],
        tracked: list[Tracked],
        snapshots: list[list[dict[str, Any]]],
    ) -> None:
        """Step 3 for the requests of one key, on signers among `nodes` (those holding the
        reservation), every scheme by `governed_rounds`."""
        row = self.gw.key(key_id)
        snaps = {t.request_id: s for t, s in zip(tracked, snapshots, strict=True)}
        claimed = None
        if self.db.shared:  # another gateway may be signing the same request right now
            claimed = self.claims.claim(snaps)
            self._adopt_signed([t for t in tracked if t.request_id in claimed])
            for t in tracked:
                if t.request_id not in claimed and t.status != SIGNED:
                    t.error = "another gateway is signing this request; ask again later"
            tracked = [t for t in tracked if t.request_id in claimed and t.status != SIGNED]
        renewing = asyncio.create_task(self._renew_claims(claimed)) if claimed else None
        try:
            groups: dict[tuple[int, ...], list[Tracked]] = defaultdict(list)
            signed_at = await self._signed_at(nodes, tracked) if self.db.shared else {}
            for t in tracked:
                groups[tuple(i for i in nodes if i not in signed_at.get(t.request_id, ()))].append(
                    t
                )
            for left, group in groups.items():
                await governed_rounds.sign(
                    self.gw,
                    self.audit,
                    row,
                    list(left),
                    group,
                    [snaps[t.request_id] for t in group],
                )
            await self._sign_past_replays(row, nodes, tracked, snaps)
        finally:
            if renewing is not None:
                renewing.cancel()
            if claimed:
                with contextlib.suppress(StoreUnavailable):  # else it lapses with its lease
                    self.claims.release(claimed)
        for t in tracked:
            classify(t)

    async def _renew_claims(self, request_ids: set[str]) -> None:
        """Keep this gateway's claims alive while it signs (every third of the lease)."""
        while True:
            await asyncio.sleep(self.claims.lease / 3)
            try:
                self.claims.renew(request_ids)
            except StoreUnavailable as exc:  # the claims lapse unless the store comes back
                log.warning("signing claims not renewed: %s", exc)

    async def _signed_at(self, nodes: list[int], tracked: list[Tracked]) -> dict[str, set[int]]:
        """Request id -> the nodes whose journal holds it signed: a request taken over from a
        gateway that died while signing is signed on the other nodes (each signs an id once)."""
        ids = [t.request_id for t in tracked]
        replies = await self.broadcast("statuses", {"request_ids": ids}, nodes)
        out: dict[str, set[int]] = defaultdict(set)
        for i, rep in replies.items():
            for rid, status in rep.get("statuses", {}).items():
                if status == "signed":
                    out[str(rid)].add(i)
        return out

    async def _sign_past_replays(
        self,
        row: Any,
        nodes: list[int],
        tracked: list[Tracked],
        snaps: dict[str, list[dict[str, Any]]],
    ) -> None:
        """Requests refused only because some signers signed them already, in a session whose
        signature was never stored (its gateway died, or the session failed): try once more
        on the nodes that did not. Nodes sign each id once, so no node signs twice."""
        again: dict[tuple[int, ...], list[Tracked]] = defaultdict(list)
        for t in tracked:
            policy = [v for v in t.refusals.values() if v["rule_id"] != "node"]
            if t.status != POLICY_REFUSED or not policy:
                continue
            if any(v["rule_id"] != "replay" for v in policy):
                continue
            left = tuple(i for i in nodes if t.refusals.get(i, {}).get("rule_id") != "replay")
            t.status, t.error = RESERVED, ""
            again[left].append(t)
        for left, group in again.items():
            await governed_rounds.sign(
                self.gw, self.audit, row, list(left), group, [snaps[t.request_id] for t in group]
            )

    def _holders(self, t: Tracked) -> list[int]:
        row = self.gw.key(t.request.intent.key_id)
        return sorted(int(i) for i in row.package["verifying_shares"])

    async def _execute(self, tracked: list[Tracked]) -> None:
        """Steps 2 and 3 for requests that hold their write quorum."""
        direct = [t for t in tracked if not t.receipts]  # signed without reservations (above)
        if direct:
            await self._execute_group(list(self.gw.nodes.ids), direct, direct=True)
        by_nodes: dict[tuple[int, ...], list[Tracked]] = defaultdict(list)
        for t in tracked:
            if not t.receipts:
                continue
            pending = [i for i, r in t.receipts.items() if is_pending(r)]
            by_nodes[tuple(sorted(pending))].append(t)
        for pending_nodes, group in by_nodes.items():
            await self._execute_group(list(pending_nodes), group)

    async def _execute_group(
        self, pending: list[int], tracked: list[Tracked], direct: bool = False
    ) -> None:
        if direct:
            by_key_: dict[str, list[Tracked]] = defaultdict(list)
            for t in tracked:
                by_key_[t.request.intent.key_id].append(t)
            for key_id, group in by_key_.items():
                await self._sign(key_id, pending, group, [[] for _ in group])
            return
        # Read every reachable journal (at least the read quorum): the more snapshots, the sooner
        # aborted requests (tombstoned on n - t + 1 nodes) stop counting against the limits.
        readers = self.gw.nodes.usable() or list(self.gw.nodes.ids)
        items = [
            {
                "request": t.request.model_dump(mode="json"),
                "receipts": [t.receipts[i] for i in sorted(t.receipts)],
            }
            for t in tracked
        ]
        snaps = await self.broadcast("snapshot", {"items": items}, readers)
        snapshots: list[list[dict[str, Any]]] = [[] for _ in tracked]
        for i, rep in snaps.items():
            if "error" in rep:
                log.warning("node %d refused snapshots: %s", i, rep["error"])
                continue
            for k, s in enumerate(rep["snapshots"]):
                snapshots[k].append(s)
        # Group by key: the signers must hold the key and its reservation.
        by_key: dict[str, list[int]] = defaultdict(list)
        for k, t in enumerate(tracked):
            by_key[t.request.intent.key_id].append(k)
        for key_id, idxs in by_key.items():
            await self._sign(
                key_id, pending, [tracked[k] for k in idxs], [snapshots[k] for k in idxs]
            )
        # A refused request would hold its reservation until it expires: abort it on every
        # node (tombstones), so that it stops counting for the others (velocity limits).
        over = [t for t in tracked if t.status in (REFUSED, EXPIRED)]
        if over:
            await self.broadcast(
                "refuse",
                {
                    "requests": [t.request.model_dump(mode="json") for t in over],
                    "reason": "refused by policy",
                },
            )


_BY_GATEWAY: dict[int, GovernedSigning] = {}


def attach(
    gw: Gateway, audit_dir: Path | None, signing_lease: float = DEFAULT_LEASE
) -> GovernedSigning:
    """Create the gateway's governance side; its audit chain lives in `audit_dir` (with the
    gateway's audit key `audit.key` written by cluster init), or nowhere (unit tests)."""
    audit = None
    if audit_dir is not None and (audit_dir / "audit.key").exists():
        key = read_user_key(audit_dir / "audit.key")
        audit = AuditLog(audit_dir / "audit.db", "gateway", key, checkpoint_every=64)
    g = GovernedSigning(gw, audit, signing_lease)
    _BY_GATEWAY[id(gw)] = g
    return g


def governed(gw: Gateway) -> GovernedSigning:
    g = _BY_GATEWAY.get(id(gw))
    return g if g is not None else attach(gw, None)
