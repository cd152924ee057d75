"""Governance wired into a node: every node checks every signing request itself.

A node runs in one of two modes, fixed by its operator's config (`node.json` "governance"), never
by the gateway:
- "governed": the node starts from the genesis document pinned by hash, replays the governance
  documents and kill switches it adopted (in order, every check re-run), and contributes a
  signature share only for a `SigningRequest` that its own policy engine accepts, with approvals
  signed by the users' own keys and, when a velocity limit applies, a quorum read of journals
  (signed receipts and snapshots, see `tholos.governance.velocity`). Plain sign items are refused.
- "none": development mode (benchmarks, demo). Every sign item is accepted as before; the node
  says so loudly in its log and in its audit chain at every start.

Storage, beside the node's database: `governance.db` (adopted documents in order, and the
journal), `audit.db` (the hash-chained audit log, checkpoints signed by the node identity key).
Every write is committed (WAL, synchronous=FULL) before the RPC answers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, ValidationError

from tholos.audit import (
    KIND_DECISION,
    KIND_GOVERNANCE,
    KIND_KILL_SWITCH,
    KIND_RESERVATION,
    KIND_SIGNATURE_SHARE,
    AuditLog,
)
from tholos.governance import (
    Accept,
    Approval,
    EntryStatus,
    Evaluator,
    GovernanceError,
    GovernanceState,
    JournalEntry,
    JournalSnapshot,
    ParserRegistry,
    RawParser,
    Refuse,
    ReservationReceipt,
    SignedDocument,
    SignedKillSwitch,
    SigningRequest,
    SQLiteJournal,
    apply_document,
    decision_record,
    engage_kill_switch,
    journal_entry,
    load_genesis,
    sign_receipt,
    sign_snapshot,
    verify_quorum_read,
)
from tholos.governance._canonical import canonical_json
from tholos.governance._keys import public_key_from_hex, verify
from tholos.governance.audit_export import audit_export_message
from tholos.governance.engine import recorded_entry
from tholos.governance.errors import InvalidDocument
from tholos.governance.key_changes import SignedKeyChange, verify_key_change
from tholos.governance.quorum import quorums
from tholos.governance.rejections import Rejection, verify_rejection
from tholos.governance.transactions import WalletResolver
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SigningRequest as SchemeRequest
from tholos.transport.e2e import Identity, PeerIdentity

log = logging.getLogger("tholos.node.governance")

DEFAULT_CHAINS = ("raw", "btc", "eth", "sol")
AUDIT_SKEW = 300
CHECKPOINT_EVERY = 64
MAX_ITEMS = 10_000


class GovernanceRefused(Exception):
    """A governance RPC this node refuses (the message is safe to show)."""


def node_name(node_id: int) -> str:
    """The node id as governance objects name it (receipts, snapshots, audit chains)."""
    return f"node-{node_id}"


class _IdentitySigner:
    """The node identity Ed25519 key, signing raw messages (receipts, snapshots, checkpoints).

    Every message it signs starts with a governance or audit domain tag (or is a tagged digest),
    so none can be confused with a relayed envelope (those start with "tholos-envelope-v1").
    """

    def __init__(self, identity: Identity) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(identity.secret[:32])

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


@dataclass(frozen=True)
class Settings:
    mode: str
    cluster_id: str = ""
    genesis: Path | None = None
    genesis_hash: bytes | None = None
    n: int = 1
    t: int = 1
    chains: tuple[str, ...] = DEFAULT_CHAINS

    @classmethod
    def from_config(cls, config_path: Path) -> Settings:
        raw: dict[str, Any] = json.loads(config_path.read_text())
        g = raw.get("governance")
        if not g or g.get("mode", "none") == "none":
            return cls(mode="none", n=len(raw.get("roster", [])) or 1)
        if g.get("mode") == "pending-genesis":
            raise ValueError("the genesis is not finalized: `tholos genesis sign`, then finalize")
        if g.get("mode") != "governed":
            raise ValueError(f"unknown governance mode {g.get('mode')!r}")
        return cls(
            mode="governed",
            cluster_id=str(g["cluster_id"]),
            genesis=(config_path.parent / str(g["genesis"])).resolve(),
            genesis_hash=bytes.fromhex(str(g["genesis_hash"])),
            n=int(g["n"]),
            t=int(g["t"]),
            chains=tuple(g.get("chains", DEFAULT_CHAINS)),
        )


_EVENTS = """
CREATE TABLE IF NOT EXISTS governance_events (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('document', 'kill_switch')),
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS key_changes (
    nonce TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    action TEXT NOT NULL,
    body TEXT NOT NULL
);
"""


class NodeGovernance:
    """The node's governance state, journal, audit chain, and the checks of the sign path."""

    def __init__(
        self,
        settings: Settings,
        directory: Path,
        identity: Identity,
        roster: dict[int, PeerIdentity],
        *,
        clock: Callable[[], float] = time.time,
        wallets: WalletResolver | None = None,
    ) -> None:
        """`wallets` builds a wallet from this node's own key store (`node.wallets`); without
        it the node signs no chain transaction."""
        self.settings = settings
        self.node_id = node_name(identity.node_id)
        self._clock = clock
        self._lock = threading.Lock()
        signer = _IdentitySigner(identity)
        self._signer = signer
        self.audit = AuditLog(
            directory / "audit.db", self.node_id, signer, checkpoint_every=CHECKPOINT_EVERY
        )
        self.node_keys = {node_name(i): p.signing_key for i, p in roster.items()}
        self.write_q, self.read_q, self.refusal_q = quorums(settings.n, settings.t)
        self.state: GovernanceState | None = None
        self._latest: str = ""
        if settings.mode == "none":
            log.warning(
                "NO GOVERNANCE: development mode, this node signs every request the gateway "
                "sends (no users, no approvals, no policy). Never run a custody cluster so."
            )
            self.audit.append(KIND_GOVERNANCE, {"event": "start", "mode": "none"})
            return
        self._db = sqlite3.connect(
            str(directory / "governance.db"), isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_EVENTS)
        self.journal = SQLiteJournal(directory / "governance.db")
        raw = self._parsers(settings.chains)
        self.evaluator = Evaluator(raw, wallets=wallets)
        assert settings.genesis is not None
        genesis = settings.genesis.read_bytes()
        state = load_genesis(genesis, settings.genesis_hash)
        self._latest = genesis.decode()
        for kind, body in self._db.execute(
            "SELECT kind, body FROM governance_events ORDER BY seq"
        ).fetchall():
            if kind == "document":
                state = apply_document(state, str(body).encode())
                self._latest = str(body)
            else:
                state = engage_kill_switch(state, str(body).encode())
        self.state = state
        self.audit.append(
            KIND_GOVERNANCE,
            {
                "event": "start",
                "mode": "governed",
                "version": state.version,
                "hash": state.hash.hex(),
                "kill_switch": state.kill_switch is not None,
            },
        )
        log.info(
            "governance: cluster %s, version %d, kill switch %s",
            state.cluster_id,
            state.version,
            "ENGAGED" if state.kill_switch else "off",
        )

    @staticmethod
    def _parsers(chains: Sequence[str]) -> ParserRegistry:
        """Payload parsers by chain. Chain parsers (PSBT, RLP...) register here when they exist;
        until then the raw parser binds intent fields to an opaque message."""
        raw = RawParser()
        return ParserRegistry(dict.fromkeys(chains, raw))

    @property
    def governed(self) -> bool:
        return self.settings.mode == "governed"

    def close(self) -> None:
        self.audit.close()
        if self.governed:
            self.journal.close()
            self._db.close()

    def _now(self) -> int:
        return int(self._clock())

    def _state(self) -> GovernanceState:
        if self.state is None:
            raise GovernanceRefused("this node runs without governance (development mode)")
        return self.state

    # -- RPC -------------------------------------------------------------------------------------
    def handle(self, req: pb.GovernanceRequest) -> pb.GovernanceReply:
        ops: dict[str, Callable[[Any], dict[str, Any]]] = {
            "state": self._op_state,
            "adopt": self._op_adopt,
            "kill_switch": self._op_kill_switch,
            "reserve": self._op_reserve,
            "snapshot": self._op_snapshot,
            "refuse": self._op_refuse,
            "reject": self._op_reject,
            "statuses": self._op_statuses,
            "audit": self._op_audit,
        }
        fn = ops.get(req.op)
        if fn is None:
            raise GovernanceRefused(f"unknown governance op {req.op!r}")
        try:
            body = json.loads(req.payload or b"{}")
        except ValueError as exc:
            raise GovernanceRefused(f"payload is not JSON: {exc}") from None
        with self._lock:
            out = fn(body)
        return pb.GovernanceReply(payload=json.dumps(out, separators=(",", ":")).encode())

    def _op_state(self, body: Any) -> dict[str, Any]:
        head = self.audit.head()
        out: dict[str, Any] = {
            "node_id": self.node_id,
            "mode": self.settings.mode,
            "audit_head": {"seq": head[0], "hash": head[1]},
        }
        if self.state is not None:
            ks = self.state.kill_switch
            out.update(
                cluster_id=self.state.cluster_id,
                version=self.state.version,
                hash=self.state.hash.hex(),
                kill_switch=None
                if ks is None
                else {"engaged_by": ks.engaged_by, "reason": ks.reason, "issued_at": ks.issued_at},
                document=json.loads(self._latest),
            )
        return out

    def _op_adopt(self, body: Any) -> dict[str, Any]:
        state = self._state()
        raw = canonical_json(body.get("document", body))
        try:
            signed = SignedDocument.model_validate_json(raw)
        except ValidationError as exc:
            raise GovernanceRefused(f"malformed governance document: {exc}") from None
        doc = signed.document
        if doc.version <= state.version and doc.digest() == state.hash:
            return {"adopted": False, "version": state.version, "already": True}
        try:
            new = apply_document(state, signed)
        except GovernanceError as exc:
            self.audit.append(
                KIND_GOVERNANCE,
                {
                    "event": "document-refused",
                    "version": doc.version,
                    "hash": doc.digest().hex(),
                    "reason": f"{type(exc).__name__}: {exc}",
                },
            )
            log.warning("governance document v%d refused: %s", doc.version, exc)
            raise GovernanceRefused(f"{type(exc).__name__}: {exc}") from None
        text = signed.model_dump_json()
        with self._db:
            self._db.execute(
                "INSERT INTO governance_events (kind, body) VALUES ('document', ?)", (text,)
            )
        self.state, self._latest = new, text
        self.audit.append(
            KIND_GOVERNANCE,
            {
                "event": "adopted",
                "version": new.version,
                "hash": new.hash.hex(),
                "signers": sorted(s.signer for s in signed.signatures),
                "release_kill_switch": doc.release_kill_switch,
            },
        )
        log.info("adopted governance document v%d", new.version)
        return {"adopted": True, "version": new.version, "hash": new.hash.hex()}

    def _op_kill_switch(self, body: Any) -> dict[str, Any]:
        state = self._state()
        try:
            signed = SignedKillSwitch.model_validate_json(canonical_json(body))
            new = engage_kill_switch(state, signed)
        except (ValidationError, GovernanceError) as exc:
            self.audit.append(KIND_KILL_SWITCH, {"event": "refused", "reason": str(exc)[:500]})
            raise GovernanceRefused(f"kill switch refused: {exc}") from None
        if state.kill_switch is not None:
            return {"engaged": True, "already": True}
        with self._db:
            self._db.execute(
                "INSERT INTO governance_events (kind, body) VALUES ('kill_switch', ?)",
                (signed.model_dump_json(),),
            )
        self.state = new
        self.audit.append(
            KIND_KILL_SWITCH,
            {"event": "engaged", "by": signed.engage.signer, "reason": signed.engage.reason},
        )
        log.error("KILL SWITCH ENGAGED by %s: %s", signed.engage.signer, signed.engage.reason)
        return {"engaged": True}

    def _requests(self, items: Any) -> list[SigningRequest]:
        if not isinstance(items, list) or len(items) > MAX_ITEMS:
            raise GovernanceRefused(f"requests: a list of at most {MAX_ITEMS}")
        try:
            return [SigningRequest.model_validate_json(canonical_json(r)) for r in items]
        except (ValidationError, ValueError) as exc:
            raise GovernanceRefused(f"malformed signing request: {exc}") from None

    def _op_reserve(self, body: Any) -> dict[str, Any]:
        """Step 1 of the velocity protocol for a batch: check, record, return signed receipts."""
        state = self._state()
        now = self._now()
        requests = self._requests(body.get("requests"))
        self.journal.expire(now)  # expired pending requests stop counting as spent
        results: list[dict[str, Any]] = [{} for _ in requests]
        to_reserve: list[tuple[int, JournalEntry, Sequence[Any]]] = []
        refusals: list[tuple[int, JournalEntry, Refuse]] = []
        for idx, request in enumerate(requests):
            prep = self.evaluator.prepare_reservation(state, request, now)
            if isinstance(prep, Refuse):
                entry = journal_entry(state, request.intent)
                refusals.append((idx, entry, prep))
            else:
                to_reserve.append((idx, prep.entry, prep.limits))
        audit: list[tuple[str, dict[str, Any]]] = []
        try:
            outcomes = self.journal.reserve_many([(e, lim) for _, e, lim in to_reserve])
        except GovernanceError as exc:
            raise GovernanceRefused(str(exc)) from None
        for (idx, entry, _), refusal in zip(to_reserve, outcomes, strict=True):
            status: EntryStatus = "pending" if refusal is None else "refused"
            receipt = sign_receipt(
                state.cluster_id, self.node_id, replace(entry, status=status), self._signer
            )
            results[idx] = {"receipt": receipt.model_dump(mode="json")}
            if refusal is not None:
                results[idx]["refused"] = {"rule_id": refusal.rule_id, "reason": refusal.reason}
            audit.append((KIND_RESERVATION, {"request_id": entry.request_id, "status": status}))
        for idx, entry, refusal in refusals:
            results[idx] = {"refused": {"rule_id": refusal.rule_id, "reason": refusal.reason}}
            request = requests[idx]
            audit.append(
                (
                    KIND_DECISION,
                    {
                        **decision_record(request.intent.request_id, request.digest(), refusal),
                        "step": "reserve",
                    },
                )
            )
            if refusal.rule_id not in ("clock", "cluster"):
                with contextlib.suppress(GovernanceError):  # a signed entry stays signed
                    self.journal.refuse(entry, f"{refusal.rule_id}: {refusal.reason}")
        self.audit.append_many(audit)
        return {"node_id": self.node_id, "results": results}

    def _op_statuses(self, body: Any) -> dict[str, Any]:
        """Which of these request ids this node's journal holds, and how (pending, signed,
        refused): a gateway taking over a request signs it on nodes that have not (public)."""
        ids = body.get("request_ids") if isinstance(body, dict) else None
        if (
            not isinstance(ids, list)
            or len(ids) > 10_000
            or not all(isinstance(i, str) and 0 < len(i) <= 200 for i in ids)
        ):
            raise GovernanceRefused("statuses: request_ids is a list of at most 10000 ids")
        return {"node_id": self.node_id, "statuses": self.journal.statuses(ids)}

    def _op_snapshot(self, body: Any) -> dict[str, Any]:
        """Step 2: signed reads of this journal, each bound to its request's receipts."""
        state = self._state()
        items = body.get("items")
        if not isinstance(items, list) or len(items) > MAX_ITEMS:
            raise GovernanceRefused(f"items: a list of at most {MAX_ITEMS}")
        window = _max_window(state)
        out = []
        for item in items:
            try:
                request = SigningRequest.model_validate_json(canonical_json(item["request"]))
                receipts = [
                    ReservationReceipt.model_validate_json(canonical_json(r))
                    for r in item["receipts"]
                ]
            except (ValidationError, ValueError, KeyError, TypeError) as exc:
                raise GovernanceRefused(f"malformed snapshot item: {exc}") from None
            candidate = journal_entry(state, request.intent)
            since = candidate.time - window
            entries = self.journal.entries_for(
                candidate.chain, candidate.asset, candidate.key_id, candidate.wallet, since
            )
            snap = sign_snapshot(
                state.cluster_id, self.node_id, candidate, receipts, entries, window, self._signer
            )
            out.append(snap.model_dump(mode="json"))
        return {"node_id": self.node_id, "snapshots": out}

    def _op_refuse(self, body: Any) -> dict[str, Any]:
        """Abort: this node will never sign these requests (tombstones release reservations)."""
        state = self._state()
        reason = str(body.get("reason", "aborted"))[:500]
        done = []
        audit: list[tuple[str, dict[str, Any]]] = []
        for request in self._requests(body.get("requests")):
            entry = journal_entry(state, request.intent)
            try:
                self.journal.refuse(entry, reason)
                done.append(request.intent.request_id)
                audit.append(
                    (KIND_RESERVATION, {"request_id": entry.request_id, "status": "refused"})
                )
            except GovernanceError:
                continue
        self.audit.append_many(audit)
        return {"refused": done}

    def _op_reject(self, body: Any) -> dict[str, Any]:
        """An approver's signed rejection: checked here, then the request is refused in this
        journal for good (no later approvals get it signed) and the rejection audited. A refused
        rejection changes nothing but the audit chain, which records the refusal."""
        state = self._state()
        try:
            request = SigningRequest.model_validate_json(canonical_json(body["request"]))
            rejection = Rejection.model_validate_json(canonical_json(body["rejection"]))
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            raise GovernanceRefused(f"malformed rejection: {str(exc)[:300]}") from None
        rid = request.intent.request_id
        groups = self.evaluator.approving_groups(state, request, self._now())
        verdict = (
            groups
            if isinstance(groups, Refuse)
            else verify_rejection(state, request, rejection, groups)
        )
        record = {"request_id": rid, "digest": request.digest().hex(), "by": rejection.approver}
        if isinstance(verdict, Refuse):
            reason = f"{verdict.rule_id}: {verdict.reason}"
            self.audit.append(
                KIND_DECISION, {**record, "event": "rejection-refused", "reason": reason}
            )
            raise GovernanceRefused(f"rejection refused [{verdict.rule_id}]: {verdict.reason}")
        try:  # one transaction: a request signed here already stays signed (AlreadySigned)
            entry = recorded_entry(state, request.intent)
            self.journal.refuse(entry, f"rejected by {rejection.approver}")
        except GovernanceError as exc:
            self.audit.append(
                KIND_DECISION, {**record, "event": "rejection-refused", "reason": str(exc)[:300]}
            )
            raise GovernanceRefused(f"rejection refused: {exc}") from None
        self.audit.append(
            KIND_DECISION,
            {**record, "event": "rejected", "accepted": False, "signature": rejection.signature},
        )
        log.warning("request %s rejected by %s", rid, rejection.approver)
        return {"node_id": self.node_id, "rejected": True}

    def _op_audit(self, body: Any) -> dict[str, Any]:
        """The whole audit chain as JSON lines, after a fresh signed checkpoint of its head.

        In a governed cluster the caller proves it is an auditor or admin: a signature of its
        own key over (cluster id, issued_at), fresh within 5 minutes.
        """
        if self.state is not None:
            state = self.state
            try:
                who = str(body["user"])
                issued_at = int(body["issued_at"])
                user = state.registry.get(who)
                if user is None or not ({"auditor", "admin"} & set(user.roles)):
                    raise GovernanceRefused(f"{who} is not an auditor or admin")
                if abs(issued_at - self._now()) > AUDIT_SKEW:
                    raise GovernanceRefused("audit request is not fresh")
                verify(
                    public_key_from_hex(user.public_key),
                    str(body["signature"]),
                    audit_export_message(state.cluster_id, issued_at),
                    who,
                )
            except GovernanceRefused:
                raise
            except (GovernanceError, KeyError, ValueError, TypeError) as exc:
                raise GovernanceRefused(f"audit export refused: {exc}") from None
        self.audit.checkpoint()
        return {"node_id": self.node_id, "lines": list(self.audit.export_lines())}

    # -- key changes -----------------------------------------------------------------------------
    def apply_key_change(
        self, raw: Any, key_id: str, action: str, apply: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """Run `apply` (disable, enable or destroy `key_id` in the vault) only for an admin-quorum
        key change this node has not applied before; its nonce is stored durably and the change
        audited before the answer leaves. Refused (nothing changed, refusal audited) otherwise."""
        state = self._state()
        with self._lock:
            try:
                signed = SignedKeyChange.model_validate_json(canonical_json(raw))
                change = verify_key_change(state, signed, key_id, action, self._now())
                if self._db.execute(
                    "SELECT 1 FROM key_changes WHERE nonce = ?", (change.nonce,)
                ).fetchone():
                    raise InvalidDocument(
                        f"key change {change.nonce} was already applied on this node "
                        "(replay): the key is unchanged"
                    )
            except (ValidationError, ValueError, GovernanceError) as exc:
                reason = f"{type(exc).__name__}: {exc}"[:500]
                self.audit.append(
                    KIND_GOVERNANCE,
                    {
                        "event": "key_change-refused",
                        "key_id": key_id,
                        "change": action,
                        "reason": reason,
                    },
                )
                raise GovernanceRefused(f"{action} refused: {reason}") from None
            out = apply()
            with self._db:
                self._db.execute(
                    "INSERT INTO key_changes (nonce, key_id, action, body) VALUES (?, ?, ?, ?)",
                    (change.nonce, key_id, action, signed.model_dump_json()),
                )
            out = {**out, "nonce": change.nonce, "governance_version": change.governance_version}
            self.audit.append(
                KIND_GOVERNANCE,
                {
                    "event": f"key_{action}",
                    **out,
                    "digest": change.digest().hex(),
                    "signers": sorted(s.signer for s in signed.signatures),
                },
            )
        log.warning("key %s: %s by admin quorum (key change %s)", key_id, action, change.nonce)
        return out

    # -- sign path -------------------------------------------------------------------------------
    def sign_batch(
        self,
        items: Sequence[pb.SignItem],
        requests: Sequence[SchemeRequest],
        vault_sign: Callable[[Sequence[SchemeRequest]], list[Any]],
    ) -> list[Any]:
        """Check every item (governed mode), mark the accepted ones signed in one durable step,
        sign them, and log every decision and share before the reply leaves."""
        if not self.governed:
            plain = vault_sign(requests)
            self.audit.append_many(
                [
                    (
                        KIND_SIGNATURE_SHARE,
                        {"request_id": r.request_id, "digest": "", "mode": "none"},
                    )
                    for r in plain
                    if r.share
                ]
            )
            return plain
        from tholos.node.vault import ShareResult
        from tholos.transport.refusal import RequestRefused

        plain = [it.request_id for it in items if not it.governance]
        if plain:
            self.audit.append_many(
                [
                    (
                        KIND_DECISION,
                        decision_record(
                            rid, b"", Refuse("governed", "plain sign item in a governed cluster")
                        ),
                    )
                    for rid in plain
                ]
            )
            raise RequestRefused(
                "refused by policy [governed]: this cluster is governed; submit a signing "
                "request with approvals (POST /v1/signing-requests)"
            )
        with self._lock:
            state = self._state()
            now = self._now()
            decisions: dict[str, Accept | Refuse] = {}
            by_request: dict[str, tuple[Accept | Refuse, JournalEntry | None]] = {}
            items_of: dict[str, list[str]] = {}  # request id -> its item ids (one per target)
            seen = _Seen(self.journal.statuses([request_of(it.request_id)[0] for it in items]))
            for item in items:
                rid, target = request_of(item.request_id)
                if rid not in by_request:  # one decision (and one journal mark) per request
                    by_request[rid] = self._decide(state, item, rid, now, seen)
                decision, _ = by_request[rid]
                if isinstance(decision, Accept):
                    decision = _bind(decision, item, target)
                decisions[item.request_id] = decision
                items_of.setdefault(rid, []).append(item.request_id)
            for rid, item_ids in items_of.items():
                whole = _whole(rid, [decisions[i] for i in item_ids], item_ids)
                if whole is not None:  # every signature of a request, or none
                    for item_id in item_ids:
                        if isinstance(decisions[item_id], Accept):
                            decisions[item_id] = whole
            items_of = {
                rid: ids for rid, ids in items_of.items() if isinstance(decisions[ids[0]], Accept)
            }
            reserved: list[str] = []
            unreserved: list[JournalEntry] = []
            for rid in items_of:
                entry = by_request[rid][1]
                if entry is None:
                    reserved.append(rid)
                else:
                    unreserved.append(entry)
            marks = self.journal.sign_many(reserved, unreserved)
            for rid, why in zip(
                [*reserved, *(e.request_id for e in unreserved)], marks, strict=True
            ):
                if why:
                    for item_id in items_of[rid]:
                        decisions[item_id] = Refuse("replay", why)
            accepted = [r for r in requests if isinstance(decisions[r.request_id], Accept)]
            signed = {r.request_id: r for r in vault_sign(accepted)} if accepted else {}
            audit: list[tuple[str, dict[str, Any]]] = []
            results: list[Any] = []
            for item in items:
                rid = item.request_id
                decision = decisions[rid]
                if isinstance(decision, Refuse):
                    record = decision_record(rid, _digest(item), decision)
                    audit.append((KIND_DECISION, record))
                    results.append(
                        ShareResult(
                            rid, error=f"PolicyRefused[{decision.rule_id}]: {decision.reason}"
                        )
                    )
                    continue
                res = signed[rid]
                record = decision_record(rid, decision.digest, decision)
                if res.share:
                    # One entry records the accepted decision and the share that left.
                    audit.append((KIND_SIGNATURE_SHARE, record))
                else:
                    audit.append((KIND_DECISION, {**record, "error": res.error[:300]}))
                results.append(res)
            self.audit.append_many(audit)
        for item, r in zip(items, results, strict=True):
            if r.error:
                log.warning("request %s refused: %s", item.request_id, r.error)
        return results

    def _decide(
        self,
        state: GovernanceState,
        item: pb.SignItem,
        rid: str,
        now: int,
        seen: _Seen,
    ) -> tuple[Accept | Refuse, JournalEntry | None]:
        """The decision for the request of an item (before its target is bound, see `_bind`),
        and the journal entry to record if it was not reserved."""
        if not item.governance:
            return Refuse(
                "governed", "this cluster is governed: sign a request with approvals"
            ), None
        try:
            blob = _SignData.model_validate_json(item.governance)  # one strict parse
            request, approvals = blob.request, blob.approvals
            receipts, snapshots = blob.receipts, blob.snapshots
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            return Refuse("malformed", f"governance data: {str(exc)[:300]}"), None
        intent = request.intent
        if intent.request_id != rid:
            return Refuse("binding", "sign item and request ids differ"), None
        if intent.key_id != item.key_id:
            return Refuse("binding", "sign item key differs from the intent's key"), None
        if intent.transaction is not None:
            if request_of(item.request_id)[1] is None:
                return Refuse("binding", "a transaction's sign item names its target (id#k)"), None
        elif request_of(item.request_id)[1] is not None:
            return Refuse("binding", "a raw request has one message: no target index"), None
        elif (item.path or "m") != intent.derivation_path:
            return Refuse("binding", "derivation path differs from the intent"), None
        else:
            root = bytes.fromhex(intent.merkle_root) if intent.merkle_root else b""
            if item.taproot != intent.taproot or item.merkle_root != root:
                return Refuse("binding", "taproot tweak differs from the intent"), None
        candidate = journal_entry(state, intent)
        if receipts:
            entries = verify_quorum_read(
                state.cluster_id,
                candidate,
                receipts,
                snapshots,
                self.node_keys,
                write_quorum=self.write_q,
                read_quorum=self.read_q,
                refusal_quorum=self.refusal_q,
                max_window=_max_window(state),
            )
            if isinstance(entries, Refuse):
                return entries, None
            decision = self.evaluator.evaluate(
                state, request, approvals, now=now, seen=seen, velocity_entries=entries
            )
            pending: JournalEntry | None = None
        else:
            decision = self.evaluator.evaluate(
                state,
                request,
                approvals,
                now=now,
                seen=seen,
                velocity_entries=(),
                require_reservation=False,
            )
            if isinstance(decision, Accept) and any(
                r.velocity for r in state.policy.rules if r.rule_id in decision.rules
            ):
                decision = Refuse("write-quorum", "a velocity limit applies: reserve on a quorum")
            # Reserved here: the pending entry is marked signed; else recorded as signed.
            pending = None if seen.status(intent.request_id) is not None else candidate
        return decision, pending


def request_of(item_id: str) -> tuple[str, int | None]:
    """(request id, target index) of a sign item id: "<request id>#<k>" is target k of a chain
    transaction (one item per signature it needs); a plain id is a one-message raw request.
    Request ids never contain "#", so the two forms cannot be confused."""
    rid, sep, k = item_id.partition("#")
    if not sep:
        return rid, None
    if not (k.isdigit() and len(k) <= 4 and str(int(k)) == k):
        return item_id, None  # no such request: refused as "sign item and request ids differ"
    return rid, int(k)


def _whole(rid: str, decisions: list[Accept | Refuse], item_ids: list[str]) -> Refuse | None:
    """Why no item of a request may be signed: one of them is refused (its reason stands for
    all), or a chain transaction's items are not each of its targets exactly once."""
    for d in decisions:
        if isinstance(d, Refuse):
            return d
    first = decisions[0]
    assert isinstance(first, Accept)
    if request_of(item_ids[0])[1] is None:
        return None
    wanted = [f"{rid}#{k}" for k in range(len(first.targets))]
    if sorted(item_ids) != sorted(wanted):
        n = len(first.targets)
        return Refuse("binding", f"targets: the batch must ask for all {n} signatures, once each")
    return None


def _bind(decision: Accept, item: pb.SignItem, target: int | None) -> Accept | Refuse:
    """The item must ask for exactly a signature this node derived itself: its target's message,
    path and taproot tweak (a raw request: the intent's), else refused naming the field."""
    if target is None:  # a raw request: path and tweak were bound to the intent
        if item.message != decision.message:
            return Refuse("payload", "message to sign differs from the approved payload")
        return decision
    if target >= len(decision.targets):
        n = len(decision.targets)
        return Refuse("binding", f"target {target}: the transaction needs {n} signatures")
    want = decision.targets[target]
    where = f"targets[{target}]"
    if item.message != want.message:
        return Refuse("payload", f"{where}.message differs from the node's own parse")
    if (item.path or "m") != want.path:
        return Refuse("binding", f"{where}.path: derivation path differs from the node's")
    if item.taproot != want.taproot or item.merkle_root:
        return Refuse("binding", f"{where}.taproot: taproot tweak differs from the node's")
    return replace(decision, message=want.message)


class _SignData(BaseModel):
    """The governance field of a sign item: the request, its approvals and the quorum read."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    request: SigningRequest
    approvals: tuple[Approval, ...]
    receipts: tuple[ReservationReceipt, ...] = ()
    snapshots: tuple[JournalSnapshot, ...] = ()


class _Seen:
    """The journal statuses of one batch's request ids, read in one query (a SeenStore)."""

    def __init__(self, statuses: dict[str, EntryStatus]) -> None:
        self._statuses = statuses

    def status(self, request_id: str) -> EntryStatus | None:
        return self._statuses.get(request_id)


def _max_window(state: GovernanceState) -> int:
    return max((v.window_seconds for r in state.policy.rules for v in r.velocity), default=1)


def _digest(item: pb.SignItem) -> bytes:
    """The request digest of a refused item, when it can be read (for the audit record)."""
    try:
        blob = json.loads(item.governance)
        return SigningRequest.model_validate_json(canonical_json(blob["request"])).digest()
    except Exception:
        return b""


def load(
    config_path: Path,
    identity: Identity,
    roster: dict[int, PeerIdentity],
    wallets: WalletResolver | None = None,
) -> NodeGovernance:
    """The node's governance from its config file (the directory of node.json holds its files)."""
    settings = Settings.from_config(config_path)
    return NodeGovernance(settings, config_path.parent, identity, roster, wallets=wallets)
