"""Node side of threshold ECDSA (presignature pool and one-round signing), threshold BLS signing and
DiSE evaluation, over the generic `Protocol` RPC (protocol names below; JSON payloads).

- `ecdsa-presign` (round1, round2, finish): a batch of `count` presignatures for one key among the
  participants (>= 2t-1 holders). round1 broadcasts each presignature's `PresignDeal` and sends the
  `PresignShares` encrypted to each recipient (transport.e2e, signed by the dealer); round2 checks
  the shares and broadcasts the openings with the echo of round 1; finish checks the echo and every
  opening, seals each presignature under the Barrier and stores it (table `presigs`), and returns
  the public parts, which the gateway compares across nodes (all must agree).
- `ecdsa-sign` (sign): each item names a presignature; the rows of every accepted item are deleted
  in one committed transaction BEFORE any share is computed (a crash loses presignatures, never
  reuses one), then s_i is returned.
- `bls-sign` (sign): σ_i = s_i·H(m). `dise-eval` (eval): y_i = k_i·H(x) with a DLEQ proof.

Every signing/evaluation item passes the vault's policy hook first (`KeyVault.policy`).

Governed clusters: an ECDSA/BLS signing item is signed only if it carries a governed request that
the node's own `NodeGovernance` accepts, with exactly the checks of FROST requests
(`tholos.node.governed_extra`); items without one are refused, fail-closed, each refusal recorded
in the audit chain: a gateway certificate alone must not yield signatures. Presigning stays
allowed (it signs nothing). DiSE evaluation there needs a user's signed authorization and
returns partials sealed to the user's client (`tholos.node.dise_governance`). Development clusters
are unaffected.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tholos.crypto.bls import threshold as bls
from tholos.crypto.dise import EvalRequest, PartialEval, evaluate
from tholos.crypto.ecdsa.presign import (
    SESSION_LENGTH,
    Presignature,
    PresignaturePublic,
    PresignDeal,
    PresignOpen,
    PresignParticipant,
    PresignShares,
    min_participants,
)
from tholos.crypto.ecdsa.sign import sign_share
from tholos.crypto.errors import CryptoError, CulpritError
from tholos.crypto.groups.secp256k1 import N
from tholos.crypto.keys import KeyShare
from tholos.node.protocols import (
    BatchState,
    ProtocolError,
    ProtocolRunner,
    context,
    envelope_digest,
)
from tholos.node.store import take_rows
from tholos.node.vault import KeyRecord, KeyVault
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SigningRequest
from tholos.transport.e2e import EnvelopeError

PROTOCOLS = frozenset({"ecdsa-presign", "ecdsa-sign", "bls-sign", "dise-eval"})
GOVERNED_SIGNING = frozenset({"ecdsa-sign", "bls-sign"})
"""Protocols whose items a governed node signs only with a governance blob (module docstring)."""
PRESIG_TABLE = "presigs"
MAX_PRESIGS_PER_BATCH = 1000
MAX_ITEMS = 10_000
PRESIGS_SCHEMA = """
CREATE TABLE IF NOT EXISTS presigs (
    presig_id BLOB PRIMARY KEY,
    key_id TEXT NOT NULL,
    sealed BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS presigs_key ON presigs (key_id);
"""


class PresigStore:
    """Sealed presignatures in the node's SQLite file (same connection as NodeStore)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.db.executescript(PRESIGS_SCHEMA)

    def put(self, key_id: str, rows: Sequence[tuple[bytes, bytes]]) -> None:
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT INTO presigs (presig_id, key_id, sealed, created) VALUES (?, ?, ?, ?)",
                [(pid, key_id, sealed, now) for pid, sealed in rows],
            )

    def take(self, ids: Sequence[bytes]) -> dict[bytes, tuple[str, bytes]]:
        """Delete the given presignatures durably (committed) and return those that existed."""
        return take_rows(self.db, "presigs", "presig_id", "key_id", ids)

    def count(self, key_id: str | None = None) -> int:
        if key_id is None:
            return int(self.db.execute("SELECT COUNT(*) FROM presigs").fetchone()[0])
        return int(
            self.db.execute("SELECT COUNT(*) FROM presigs WHERE key_id = ?", (key_id,)).fetchone()[
                0
            ]
        )


def _compact(presig: Presignature) -> dict[str, Any]:
    """The sealed form: what online signing needs (R, Γ, the key binding, k_i, c_i), without the
    other parties' check values U_j, V_j, Z_j (the gateway keeps those): parsing 3n points per
    signature would dominate a node's online cost. Integrity comes from the Barrier's AEAD."""
    d = presig.export_secret()
    pub = d["public"]
    return {
        "k": d["k"],
        "c": d["c"],
        **{
            f: pub[f]
            for f in (
                "session",
                "key_fingerprint",
                "group_public_key",
                "threshold",
                "participants",
                "big_r",
                "gamma",
            )
        },
    }


def _expand(identifier: int, d: dict[str, Any]) -> Presignature:
    from tholos.crypto.groups.secp256k1 import SECP256K1 as G

    def pt(name: str) -> Any:
        return G.deserialize_element(bytes.fromhex(d[name]))

    public = PresignaturePublic(
        session=bytes.fromhex(d["session"]),
        key_fingerprint=bytes.fromhex(d["key_fingerprint"]),
        group_public_key=pt("group_public_key"),
        threshold=int(d["threshold"]),
        participants=tuple(int(i) for i in d["participants"]),
        big_r=pt("big_r"),
        gamma=pt("gamma"),
        u={},
        v={},
        z={},
    )
    return Presignature(identifier, public, int(d["k"], 16), int(d["c"], 16))


def _session(batch: str, key_id: str, idx: int) -> bytes:
    import hashlib

    h = hashlib.sha256(f"tholos-ecdsa-presign|{batch}|{key_id}|{idx}".encode()).digest()
    return h[:SESSION_LENGTH]


@dataclass(frozen=True)
class Checked:
    """A signing item whose fields were checked, before anything is consumed."""

    rid: str
    rec: KeyRecord
    message: bytes  # ECDSA: the 32-byte digest
    path: str = ""
    presig: bytes = b""  # ECDSA: the presignature id
    tweak: int = 0  # ECDSA: the BIP32 tweak of `path`


class ExtraProtocols:
    def __init__(
        self,
        runner: ProtocolRunner,
        vault: KeyVault,
        db: Any,
        governance: Callable[[], Any] = lambda: None,
    ) -> None:
        self.runner = runner
        self.vault = vault
        self._governance = governance  # the node's NodeGovernance (None in unit tests)
        self.presigs = PresigStore(db)
        self._lock = threading.Lock()

    @property
    def node_id(self) -> int:
        return self.runner.node_id

    def step(self, req: pb.ProtocolRequest) -> pb.ProtocolReply:
        body = json.loads(req.payload or b"{}")
        batch = str(body.get("batch", ""))
        if not batch:
            raise ProtocolError("missing batch id")
        if req.protocol == "ecdsa-presign":
            return pb.ProtocolReply(envelope=self._presign(req, batch, body))
        items = body.get("items", [])
        if not isinstance(items, list) or len(items) > MAX_ITEMS:
            raise ProtocolError(f"items must be a list of at most {MAX_ITEMS}")
        state = BatchState(req.protocol, batch, [self.node_id], [])
        gov = self._governance()
        if req.protocol == "dise-eval":
            results = self._dise_eval(items, gov)
        elif req.protocol in GOVERNED_SIGNING and gov is not None and gov.governed:
            from tholos.node.governed_extra import sign_governed

            results = sign_governed(self, gov, req.protocol, items)
        elif req.protocol in GOVERNED_SIGNING:
            results = self._sign(req.protocol, items)
        else:
            raise ProtocolError(f"unknown protocol {req.protocol}")
        return pb.ProtocolReply(envelope=self.runner._seal(state, req.phase, {"results": results}))

    # -- helpers -----------------------------------------------------------------------------------
    @staticmethod
    def _refuse_governed(gov: Any, protocol: str, items: list[Any]) -> dict[str, Any]:
        """Refuse every item (a plain item in a governed cluster), recording each refusal in the
        audit chain before replying."""
        from tholos.audit import KIND_DECISION
        from tholos.governance import Refuse, decision_record

        why = Refuse("governed", f"{protocol} item without a governed request (approvals)")
        rids = [str(it.get("request_id", "")) if isinstance(it, dict) else "" for it in items]
        gov.audit.append_many([(KIND_DECISION, decision_record(r, b"", why)) for r in rids])
        return {r: {"error": f"PolicyRefused[{why.rule_id}]: {why.reason}"} for r in rids}

    def _record(self, key_id: str, kind: str, epoch: Any = None) -> KeyRecord:
        """The key's record; with the epoch the gateway expects, a stale share is refused."""
        rec = self.vault.record(key_id)
        if getattr(rec.scheme, "kind", "") != kind:
            raise ProtocolError(f"key {key_id} is not a {kind} key")
        if epoch is not None:
            self.vault.check_epoch(key_id, int(epoch))
        return rec

    def _policy(self, rid: str, key_id: str, message: bytes, path: str = "") -> None:
        self.vault.policy(key_id, SigningRequest(rid, key_id, message, path))

    # -- ECDSA presigning --------------------------------------------------------------------------
    def _presign(self, req: pb.ProtocolRequest, batch: str, body: dict[str, Any]) -> pb.Envelope:
        r = self.runner
        r._expire()
        if req.phase == "round1":
            if batch in r.batches:
                raise ProtocolError(f"batch {batch} already started")
            participants = sorted(int(p) for p in body["participants"])
            if self.node_id not in participants:
                raise ProtocolError("this node is not a participant")
            sessions = body["sessions"]
            if not isinstance(sessions, list) or len(sessions) != 1:
                raise ProtocolError("one key per presign batch")
            key_id = str(sessions[0]["key_id"])
            count = int(sessions[0]["count"])
            if not 0 < count <= MAX_PRESIGS_PER_BATCH:
                raise ProtocolError(f"count must be in 1..{MAX_PRESIGS_PER_BATCH}")
            rec = self._record(key_id, "ecdsa", sessions[0].get("epoch"))
            share: KeyShare[Any] = rec.share
            if len(participants) < min_participants(share.public.threshold):
                raise ProtocolError("presigning needs 2t-1 participants")
            machines = [
                PresignParticipant(share, _session(batch, key_id, i), participants)
                for i in range(count)
            ]
            state = BatchState("ecdsa-presign", batch, participants, [])
            deals = []
            private: dict[int, list[dict[str, Any]]] = {j: [] for j in participants}
            for m in machines:
                deal, shares = m.round1()
                deals.append(deal.to_dict())
                for j, sh in shares.items():
                    private[j].append(sh.to_dict())
            mine = private.pop(self.node_id)
            enc = {
                str(j): r.identity.encrypt_to(
                    j, context("ecdsa-presign-private", "round1", batch, j), json.dumps(p).encode()
                ).hex()
                for j, p in private.items()
            }
            state.pending = [key_id, share.public.threshold, machines, mine]
            r.batches[batch] = state
            return r._seal(state, "round1", {"deals": deals, "private": enc})
        found = r.batches.get(batch)
        if found is None or found.protocol != "ecdsa-presign":
            raise ProtocolError(f"no ecdsa-presign batch {batch} in progress on this node")
        state = found
        expected = {"round1": "round2", "round2": "finish"}.get(state.phase)
        if expected != req.phase:
            raise ProtocolError(f"phase {req.phase} not allowed after {state.phase}")
        try:
            if req.phase == "round2":
                env = self._presign_round2(state, req.envelopes)
            else:
                env = self._presign_finish(state, req.envelopes)
        except CulpritError as exc:
            r.batches.pop(batch, None)
            raise ProtocolError(f"presign: {exc}", exc.culprits) from None
        except (CryptoError, KeyError, ValueError) as exc:
            r.batches.pop(batch, None)
            raise ProtocolError(f"presign: {type(exc).__name__}: {exc}") from None
        except Exception:
            r.batches.pop(batch, None)
            raise
        state.phase = req.phase
        if req.phase == "finish":
            r.batches.pop(batch, None)
        return env

    def _presign_round2(self, state: BatchState, envelopes: Sequence[pb.Envelope]) -> pb.Envelope:
        r = self.runner
        got = r._collect(state, "round1", envelopes)
        state.echo = envelope_digest(envelopes)
        _key_id, threshold, machines, mine = state.pending
        inbox: dict[int, list[Any]] = {self.node_id: mine}
        culprits = []
        for i, b in got.items():
            if i == self.node_id:
                continue
            try:
                blob = bytes.fromhex(b["private"][str(self.node_id)])
                plain = r.identity.decrypt_from(
                    i, context("ecdsa-presign-private", "round1", state.batch, self.node_id), blob
                )
                inbox[i] = json.loads(plain)
                if len(inbox[i]) != len(machines):
                    culprits.append(i)
            except (KeyError, ValueError, EnvelopeError):
                culprits.append(i)
        if culprits:
            raise ProtocolError("missing or unreadable presign shares", culprits)
        deals_by = {i: b["deals"] for i, b in got.items()}
        if any(not isinstance(d, list) or len(d) != len(machines) for d in deals_by.values()):
            bad = [
                i for i, d in deals_by.items() if not isinstance(d, list) or len(d) != len(machines)
            ]
            raise ProtocolError("wrong number of presign deals", bad)
        opens = []

        for idx, m in enumerate(machines):
            deals = [PresignDeal.from_dict(deals_by[i][idx], threshold) for i in state.participants]
            shares = [PresignShares.from_dict(inbox[i][idx]) for i in state.participants]
            opens.append(m.round2(deals, shares).to_dict())

        return r._seal(state, "round2", {"echo": state.echo, "opens": opens})

    def _presign_finish(self, state: BatchState, envelopes: Sequence[pb.Envelope]) -> pb.Envelope:
        r = self.runner
        got = r._collect(state, "round2", envelopes)
        r._check_echo(got, state.echo)
        key_id, _threshold, machines, _mine = state.pending
        publics: list[dict[str, Any]] = []
        rows: list[tuple[bytes, bytes]] = []
        for idx, m in enumerate(machines):
            opens = [PresignOpen.from_dict(got[i]["opens"][idx]) for i in state.participants]
            presig: Presignature = m.finish(opens)
            pid = presig.public.session
            secret = json.dumps(_compact(presig)).encode()
            rows.append((pid, self.vault._barrier.seal(PRESIG_TABLE, pid, secret)))
            publics.append(presig.public.to_dict())
        self.presigs.put(key_id, rows)
        echo = envelope_digest(envelopes)
        return r._seal(state, "finish", {"echo": echo, "results": {key_id: publics}})

    # -- ECDSA and BLS signing ---------------------------------------------------------------------
    def signer(
        self, protocol: str
    ) -> tuple[Callable[[dict[str, Any]], Checked], Callable[[Sequence[Checked]], dict[str, Any]]]:
        """The per-item check and the share computation of `ecdsa-sign` or `bls-sign`, shared
        by plain (`_sign`) and governed (`governed_extra`) batches."""
        if protocol == "ecdsa-sign":
            return self._ecdsa_check, self._ecdsa_shares
        if protocol == "bls-sign":
            return self._bls_check, self._bls_shares
        raise ValueError(f"{protocol} is not a signing protocol")

    def _sign(self, protocol: str, items: list[Any]) -> dict[str, Any]:
        """Results by request id of a plain batch: every item is checked before anything is
        consumed, then shares are computed for the accepted ones."""
        check, shares = self.signer(protocol)
        results: dict[str, Any] = {}
        accepted: list[Checked] = []
        for it in items:
            rid = str(it.get("request_id", "")) if isinstance(it, dict) else ""
            try:
                accepted.append(check(it))
            except Exception as exc:  # refused: nothing consumed
                results[rid] = {"error": f"{type(exc).__name__}: {exc}"}
        results.update(shares(accepted))
        return results

    def _ecdsa_check(self, it: dict[str, Any]) -> Checked:
        rid = str(it.get("request_id", ""))
        key_id = str(it["key_id"])
        rec = self._record(key_id, "ecdsa", it.get("epoch"))
        digest = bytes.fromhex(it["digest"])
        if len(digest) != 32:
            raise ProtocolError("ECDSA signs a 32-byte digest")
        path = str(it.get("path", ""))
        pid = bytes.fromhex(it["presig"])
        tweak = rec.scheme.tweak(rec.share.public, rec.meta, path)
        self._policy(rid, key_id, digest, path)
        return Checked(rid, rec, digest, path, pid, tweak)

    def _ecdsa_shares(self, accepted: Sequence[Checked]) -> dict[str, Any]:
        """s_i for each accepted item; every presignature used is deleted (committed) first."""
        results: dict[str, Any] = {}
        taken = self.presigs.take([a.presig for a in accepted])
        for a in accepted:
            got = taken.pop(a.presig, None)
            if got is None:
                results[a.rid] = {"error": "VaultError: unknown or used presignature"}
                continue
            try:
                if got[0] != a.rec.key_id:
                    raise ProtocolError("presignature belongs to another key")
                plain = self.vault._barrier.open(PRESIG_TABLE, a.presig, got[1])
                presig = _expand(self.node_id, json.loads(plain))
                sh = sign_share(presig, a.rec.share, a.message, tweak=a.tweak)
                s = sh.s
                if self.vault.fault == "corrupt-shares":
                    s = (s + 1) % N
                results[a.rid] = {"s": s.to_bytes(32, "big").hex()}
            except Exception as exc:
                results[a.rid] = {"error": f"{type(exc).__name__}: {exc}"}
        return results

    # -- BLS ---------------------------------------------------------------------------------------
    def _bls_check(self, it: dict[str, Any]) -> Checked:
        rid = str(it.get("request_id", ""))
        key_id = str(it["key_id"])
        rec = self._record(key_id, "bls", it.get("epoch"))
        message = bytes.fromhex(it["message"])
        self._policy(rid, key_id, message)
        return Checked(rid, rec, message)

    def _bls_shares(self, accepted: Sequence[Checked]) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for a in accepted:
            message = a.message
            if self.vault.fault == "corrupt-shares":
                message = message + b"\x00"  # a partial of another message: detectable
            try:
                partial = bls.sign_share(a.rec.share, message)
                results[a.rid] = {"partial": partial.to_dict()}
            except Exception as exc:
                results[a.rid] = {"error": f"{type(exc).__name__}: {exc}"}
        return results

    # -- DiSE --------------------------------------------------------------------------------------
    def _dise_eval(self, items: list[Any], gov: Any = None) -> dict[str, Any]:
        """Plain partials in a development cluster; in a governed one only for a user's signed
        authorization, sealed to the user's client (`tholos.node.dise_governance`)."""
        if gov is not None and gov.governed:
            from tholos.node.dise_governance import evaluate_governed

            return evaluate_governed(gov, self.node_id, items, self._dise_partial)
        results: dict[str, Any] = {}
        for it in items:
            rid = str(it.get("request_id", ""))
            try:
                results[rid] = {"partial": self._dise_partial(it).to_dict()}
            except Exception as exc:
                results[rid] = {"error": f"{type(exc).__name__}: {exc}"}
        return results

    def _dise_partial(self, it: dict[str, Any]) -> PartialEval:
        rid = str(it.get("request_id", ""))
        key_id = str(it["key_id"])
        rec = self._record(key_id, "dise", it.get("epoch"))
        request = EvalRequest.from_dict(it["request"])
        self._policy(rid, key_id, request.alpha, "")
        if self.vault.fault == "corrupt-shares":
            request = EvalRequest(
                request.key_id, request.encryptor, os.urandom(32), request.purpose
            )
        return evaluate(rec.share, request)


def for_service(service: Any) -> ExtraProtocols:
    """The service's ExtraProtocols, created on first use."""
    ext = getattr(service, "_extra_protocols", None)
    if ext is None:
        ext = ExtraProtocols(
            service.protocols, service.vault, service.store.db, lambda: service.governance
        )
        service._extra_protocols = ext
    return ext
