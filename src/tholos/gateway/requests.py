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
import json
import logging
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tholos.audit import KIND_GOVERNANCE, KIND_SIGNATURE_RELEASED, AuditLog
from tholos.crypto.errors import CryptoError, InvalidSignatureShare
from tholos.gateway.service import Gateway, GatewayError
from tholos.gateway.signing import MAX_ATTEMPTS
from tholos.gateway.store import KeyRow
from tholos.gateway.transport import NodeRefused, NodeUnavailable
from tholos.governance import Approval, SigningRequest
from tholos.node.governance import quorums
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SCHEMES, Scheme, SignerCommitment, as_frost
from tholos.schemes import SigningRequest as SchemeRequest

log = logging.getLogger("tholos.gateway")
_POLICY_RE = re.compile(r"^PolicyRefused\[([^\]]*)\]: (.*)$", re.S)
GOVERNANCE_TIMEOUT = 30.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS signing_requests (
    request_id TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    approvals TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS governance_proposals (
    proposal_id TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    signatures TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    created REAL NOT NULL
);
"""


@dataclass
class Tracked:
    """A governed request as the gateway tracks it through the three steps."""

    request: SigningRequest
    approvals: list[Approval]
    status: str = "created"
    receipts: dict[int, dict[str, Any]] = field(default_factory=dict)
    refusals: dict[int, dict[str, str]] = field(default_factory=dict)
    signers: list[int] = field(default_factory=list)
    signature: str = ""
    public_key: str = ""
    error: str = ""

    _digest: str = ""
    _request_json: str = ""
    _approvals_json: str = ""
    _approvals_of: tuple[Approval, ...] = ()

    @property
    def request_id(self) -> str:
        return self.request.intent.request_id

    def request_json(self) -> str:
        """The request's JSON, encoded once (stored, and sent to every signer)."""
        if not self._request_json:
            self._request_json = self.request.model_dump_json()
        return self._request_json

    def approvals_json(self) -> str:
        """The approvals as a JSON array, re-encoded only when the approvals change."""
        if (
            not self._approvals_json
            or len(self._approvals_of) != len(self.approvals)
            or any(a is not b for a, b in zip(self._approvals_of, self.approvals, strict=True))
        ):
            self._approvals_of = tuple(self.approvals)
            self._approvals_json = "[" + ",".join(a.model_dump_json() for a in self.approvals) + "]"
        return self._approvals_json

    @property
    def digest(self) -> str:
        if not self._digest:
            self._digest = self.request.digest().hex()
        return self._digest

    def brief(self) -> dict[str, Any]:
        """What a batch call returns per request."""
        out: dict[str, Any] = {"request_id": self.request_id, "status": self.status}
        if self.signature:
            out.update(signature=self.signature, public_key=self.public_key, signers=self.signers)
        else:
            out.update(refusals={str(k): v for k, v in sorted(self.refusals.items())})
            out["error"] = self.error
        return out

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "request_id": self.request_id,
            "status": self.status,
            "intent": self.request.intent.model_dump(mode="json"),
            "digest": self.digest,
            "approvals": [a.approver for a in self.approvals],
            "reserved_on": sorted(i for i, r in self.receipts.items() if _pending(r)),
            "refusals": {str(k): v for k, v in sorted(self.refusals.items())},
            "signers": self.signers,
        }
        if self.signature:
            out["signature"] = self.signature
            out["public_key"] = self.public_key
        if self.error:
            out["error"] = self.error
        return out


def _pending(receipt: dict[str, Any]) -> bool:
    return bool(receipt.get("entry", {}).get("status") == "pending")


def _refusal(reason: str) -> dict[str, str]:
    m = _POLICY_RE.match(reason)
    if m:
        return {"rule_id": m.group(1), "reason": m.group(2)}
    return {"rule_id": "node", "reason": reason}


class GovernedSigning:
    """Gateway side of governance. One per Gateway (see `governed(gw)`)."""

    def __init__(self, gw: Gateway, audit: AuditLog | None) -> None:
        self.gw = gw
        self.audit = audit
        self.db = gw.store.db
        self.db.executescript(SCHEMA)
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
        with self.db:
            self.db.execute(
                "UPDATE governance_proposals SET signatures = ?, status = ?, detail = ? "
                "WHERE proposal_id = ?",
                (json.dumps(sigs), status, json.dumps(result), pid),
            )
        return self.proposal(pid)

    # -- signing requests ------------------------------------------------------------------------
    def _save(self, tracked: list[Tracked]) -> None:
        """Store the requests' state in ONE transaction (the store is in autocommit mode: without
        BEGIN every row was its own commit, ~3x the CPU and the WAL writes)."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO signing_requests VALUES (?,?,?,?,?,?,?) ON CONFLICT(request_id) DO "
                "UPDATE SET approvals = excluded.approvals, status = excluded.status, "
                "detail = excluded.detail, updated = excluded.updated",
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
                            }
                        ),
                        now,
                        now,
                    )
                    for t in tracked
                ],
            )
        for t in tracked:
            self._cache[t.request_id] = t
            if len(self._cache) > 50_000:
                self._cache.clear()

    def get(self, request_id: str) -> Tracked:
        t = self._cache.get(request_id)
        if t is not None:
            return t
        row = self.db.execute(
            "SELECT request, approvals, status, detail FROM signing_requests WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        if row is None:
            raise GatewayError(404, "unknown_request", f"unknown signing request {request_id[:64]}")
        d = json.loads(row[3])
        t = Tracked(
            SigningRequest.model_validate_json(row[0]),
            [Approval.model_validate_json(json.dumps(a)) for a in json.loads(row[1])],
            str(row[2]),
            {int(k): v for k, v in d["receipts"].items()},
            {int(k): v for k, v in d["refusals"].items()},
            list(d["signers"]),
            d["signature"],
            d["public_key"],
            d["error"],
        )
        self._cache[request_id] = t
        return t

    def list_requests(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        q = "SELECT request_id FROM signing_requests"
        args: tuple[Any, ...] = ()
        if status:
            q += " WHERE status = ?"
            args = (status,)
        rows = self.db.execute(q + " ORDER BY created DESC LIMIT ?", (*args, limit)).fetchall()
        return [self.get(str(r[0])).summary() for r in rows]

    async def create(
        self, items: list[tuple[SigningRequest, list[Approval]]], execute: bool = True
    ) -> list[Tracked]:
        """Store and reserve new requests (batched); then try to sign those with approvals."""
        tracked = []
        known = self._known([request.intent.request_id for request, _ in items])
        for request, approvals in items:
            rid = request.intent.request_id
            existing = self._exists(rid) if rid in known else None
            if existing is not None:
                if existing.request != request:
                    raise GatewayError(409, "conflict", f"request {rid} exists with another intent")
                tracked.append(existing)
                continue
            row = self.gw.key(request.intent.key_id)  # 404 for an unknown key
            if request.intent.taproot and row.scheme != "bip340":
                raise GatewayError(400, "bad_request", "the taproot tweak is for bip340 keys only")
            if row.scheme in ("ecdsa", "bls12381"):  # threshold ECDSA/BLS: gateway/governed_extra
                from tholos.gateway.governed_extra import check_request

                check_request(self.gw, row, request)  # 400 for a message the key cannot sign
            tracked.append(Tracked(request, list(approvals)))
        fresh = [t for t in tracked if t.status == "created"]
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
        self._save(tracked)
        return tracked

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
            raise GatewayError(400, "bad_request", "approval is for another request")
        if t.status == "signed":
            raise GatewayError(409, "already_signed", "request is signed already")
        t.approvals = [a for a in t.approvals if a.approver != approval.approver] + [approval]
        if t.status in ("reserved", "refused-by-policy"):
            await self._execute([t])
        self._save([t])
        return t

    async def execute(self, request_id: str) -> Tracked:
        t = self.get(request_id)
        if t.status in ("reserved", "refused-by-policy"):
            await self._execute([t])
            self._save([t])
        return t

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
                    t.refusals[i] = _refusal(str(rep["error"]))
                continue
            for t, res in zip(tracked, rep["results"], strict=True):
                if "receipt" in res:
                    t.receipts[i] = res["receipt"]
                if "refused" in res:
                    t.refusals[i] = res["refused"]
        aborted = []
        for t in tracked:
            pending = [i for i, r in t.receipts.items() if _pending(r)]
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
            pending = [i for i, r in t.receipts.items() if _pending(r)]
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
        # A request refused for velocity would hold its reservation until it expires: abort it
        # on every node (tombstones), so that it stops counting for the others.
        over = [t for t in tracked if t.status == "refused-by-policy" and "velocity" in t.error]
        if over:
            await self.broadcast(
                "refuse",
                {
                    "requests": [t.request.model_dump(mode="json") for t in over],
                    "reason": "velocity limit",
                },
            )
            for t in over:
                t.status = "refused"

    async def _sign(
        self,
        key_id: str,
        nodes: list[int],
        tracked: list[Tracked],
        snapshots: list[list[dict[str, Any]]],
    ) -> None:
        """Step 3 for the requests of one key, on `t` usable signers among `nodes` (those holding
        the reservation). A signer that fails (unreachable, timed out, or refusing for a reason
        other than policy) is named in the request's refusals and the requests retried on other
        nodes, as the ungoverned path does. The nodes of a failed attempt are not asked again for
        those requests: their journals refuse a second sign of a request id, and a retry on a new
        signer set is a fresh FROST session (fresh nonces), so no request is signed twice."""
        row = self.gw.key(key_id)
        if row.scheme in ("ecdsa", "bls12381"):  # threshold ECDSA/BLS: gateway/governed_extra
            from tholos.gateway.governed_extra import sign_extra

            return await sign_extra(self, row, nodes, tracked, snapshots)
        scheme = SCHEMES[row.scheme]
        public = self.gw._public(row)
        holders = [i for i in nodes if str(i) in row.package["verifying_shares"]]
        t_key = int(row.package["threshold"])
        snaps = {t.request_id: s for t, s in zip(tracked, snapshots, strict=True)}
        spent: set[int] = set()  # failed signers, and the others of their attempts
        pending = list(tracked)
        for _ in range(MAX_ATTEMPTS):
            candidates = [i for i in holders if i not in spent]
            signers = await self.gw.nodes.choose_signers(candidates, t_key)
            if len(signers) < t_key:
                break
            pending, used = await self._attempt(scheme, row, public, signers, pending, snaps)
            if not pending:
                return
            spent.update(used)
        for t in pending:
            failed = "; ".join(f"node {s}: {v['reason']}" for s, v in sorted(t.refusals.items()))
            t.status = "reserved"
            t.error = f"fewer than {t_key} usable reserved signers left" + (
                f" ({failed})" if failed else ""
            )

    async def _attempt(
        self,
        scheme: Scheme,
        row: KeyRow,
        public: Any,
        signers: list[int],
        tracked: list[Tracked],
        snaps: dict[str, list[dict[str, Any]]],
    ) -> tuple[list[Tracked], list[int]]:
        """One signing session of `tracked` on `signers`: the requests to retry, and the nodes
        not to ask again for them (the failed one, or every signer once shares were asked)."""
        key_id = row.key_id
        try:
            comms = {
                s: await self.gw.nodes.take_commitments(s, scheme.pool, len(tracked))
                for s in signers
            }
        except (NodeUnavailable, NodeRefused) as exc:
            self._failed(exc.node_id, exc, tracked)
            return tracked, [exc.node_id]
        messages = [_message(t.request) for t in tracked]
        roots = [_merkle_root(t.request) for t in tracked]
        items = []
        for k, t in enumerate(tracked):
            # Pydantic's serializer and string joins: this runs once per request per batch.
            receipts = [t.receipts[i] for i in sorted(t.receipts)]
            snapshots = snaps[t.request_id]
            blob = (
                '{"request":'
                + t.request_json()
                + ',"approvals":'
                + t.approvals_json()
                + ',"receipts":'
                + (json.dumps(receipts) if receipts else "[]")
                + ',"snapshots":'
                + (json.dumps(snapshots) if snapshots else "[]")
                + "}"
            )
            items.append(
                pb.SignItem(
                    request_id=t.request_id,
                    key_id=key_id,
                    message=messages[k],
                    path=""
                    if t.request.intent.derivation_path == "m"
                    else t.request.intent.derivation_path,
                    commitments=[
                        pb.SignerCommitment(
                            signer=s,
                            nonce_id=comms[s][k].nonce_id,
                            hiding=comms[s][k].hiding,
                            binding=comms[s][k].binding,
                        )
                        for s in signers
                    ],
                    governance=blob.encode(),
                    taproot=t.request.intent.taproot,
                    merkle_root=roots[k] or b"",
                )
            )
        request = pb.SignBatchRequest(items=items)
        replies = await asyncio.gather(
            *(self.gw.nodes.transport(s).sign_batch(request, GOVERNANCE_TIMEOUT) for s in signers),
            return_exceptions=True,
        )
        shares: dict[int, dict[str, pb.SignResult]] = {}
        retry: list[Tracked] = []
        for s, rep in zip(signers, replies, strict=True):
            if isinstance(rep, BaseException):
                self._failed(s, rep, tracked)
            else:
                self.gw.nodes.mark_ok(s)
                shares[s] = {r.request_id: r for r in rep.results}
        released: list[tuple[str, dict[str, Any]]] = []
        for k, t in enumerate(tracked):
            t.signers = signers
            got: dict[int, bytes] = {}
            policy = False
            for s in signers:
                r = shares.get(s, {}).get(t.request_id)
                if r is None:
                    continue
                if not r.error:
                    got[s] = r.share
                elif _POLICY_RE.match(r.error):
                    t.refusals[s] = _refusal(r.error)
                    policy = True
                else:  # a fault of that node (its nonce store...): retried elsewhere
                    t.refusals[s] = {"rule_id": "node", "reason": r.error[:300]}
            if policy:
                t.status = "refused-by-policy"
                t.error = "; ".join(
                    f"node {s}: [{v['rule_id']}] {v['reason']}"
                    for s, v in sorted(t.refusals.items())
                    if s in signers
                )
                continue
            if not got and all(s in shares and t.request_id in shares[s] for s in signers):
                # Every signer answered with a fault for this request: the request, not a node.
                t.status = "failed"
                t.error = "; ".join(f"node {s}: {t.refusals[s]['reason']}" for s in signers)
                continue
            if len(got) < len(signers):
                retry.append(t)
                continue
            cm = {
                s: SignerCommitment(comms[s][k].nonce_id, comms[s][k].hiding, comms[s][k].binding)
                for s in signers
            }
            taproot = t.request.intent.taproot
            sreq = SchemeRequest(
                t.request_id, key_id, messages[k], items[k].path, taproot, roots[k], cm
            )
            try:
                sig = as_frost(scheme).aggregate(public, row.meta, sreq, got)
            except InvalidSignatureShare as exc:
                for c in exc.culprits:
                    t.refusals[c] = {"rule_id": "node", "reason": "invalid signature share"}
                    self.gw.nodes.quarantine(c, f"invalid signature share for {t.request_id}")
                retry.append(t)
                continue
            except CryptoError as exc:
                t.status, t.error = "failed", f"aggregation failed: {exc}"
                continue
            tweak = scheme.tweak(public, row.meta, items[k].path)
            t.signature, t.status, t.error = sig.hex(), "signed", ""
            root = scheme.merkle_root(taproot, roots[k])
            t.public_key = scheme.public_key(public, tweak, root).hex()
            released.append(
                (
                    KIND_SIGNATURE_RELEASED,
                    {"request_id": t.request_id, "digest": t.digest},
                )
            )
        if self.audit is not None and released:
            self.audit.append_many(released)
        return retry, signers

    def _failed(self, node: int, exc: BaseException, tracked: list[Tracked]) -> None:
        """A signer failed for the whole batch: name it in every request; a node that did not
        answer is marked down (and slow on a timeout) so that later batches avoid it."""
        if isinstance(exc, NodeRefused):
            reason = f"refused: {exc.reason}"
        elif isinstance(exc, NodeUnavailable):
            self.gw.nodes.mark_down(node, str(exc))
            reason = f"unavailable: {exc}"
        else:
            log.error("node %d: unexpected %r", node, exc)
            reason = f"error: {type(exc).__name__}"
        log.warning("governed signing: node %d failed, retrying elsewhere: %s", node, reason)
        for t in tracked:
            t.refusals[node] = {"rule_id": "node", "reason": reason[:300]}


def _message(request: SigningRequest) -> bytes:
    """The message signers sign: what the chain's parser derives (raw payloads: `data`).

    A plain parse: every node parses the payload strictly (canonical form, fields bound to the
    intent) and refuses a message that differs from it, so the gateway need not check twice."""
    try:
        obj = json.loads(request.payload_bytes())
        return bytes.fromhex(str(obj["data"]))
    except (ValueError, KeyError, TypeError):
        return b""


def _merkle_root(request: SigningRequest) -> bytes | None:
    """The BIP341 script tree root of a taproot intent (None: key-path only or no tweak)."""
    root = request.intent.merkle_root
    return bytes.fromhex(root) if root else None


_BY_GATEWAY: dict[int, GovernedSigning] = {}


def attach(gw: Gateway, audit_dir: Path | None) -> GovernedSigning:
    """Create the gateway's governance side; its audit chain lives in `audit_dir` (with the
    gateway's audit key `audit.key` written by cluster init), or nowhere (unit tests)."""
    audit = None
    if audit_dir is not None and (audit_dir / "audit.key").exists():
        from tholos.cluster.governance_init import read_user_key

        key = read_user_key(audit_dir / "audit.key")
        audit = AuditLog(audit_dir / "audit.db", "gateway", key, checkpoint_every=64)
    g = GovernedSigning(gw, audit)
    _BY_GATEWAY[id(gw)] = g
    return g


def governed(gw: Gateway) -> GovernedSigning:
    g = _BY_GATEWAY.get(id(gw))
    return g if g is not None else attach(gw, None)
