"""Threshold ECDSA on the node: the presignature pool and one-round signing.

- `ecdsa-presign` (round1, round2, finish): a batch of `count` presignatures for one key among the
  participants (>= 2t-1 holders). round1 broadcasts each presignature's `PresignDeal` and sends the
  `PresignShares` encrypted to each recipient (transport.e2e, signed by the dealer); round2 checks
  the shares and broadcasts the openings with the echo of round 1; finish checks the echo and every
  opening, seals each presignature under the Barrier and stores it (table `presigs`), and returns
  the public parts, which the gateway compares across nodes (all must agree). Presigning is
  allowed in a governed cluster too: it signs nothing.
- `ecdsa-sign` (sign): each item names a presignature; the rows of every accepted item are deleted
  in one committed transaction BEFORE any share is computed (a crash loses presignatures, never
  reuses one), then s_i is returned.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

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
from tholos.crypto.keys import KeyShare
from tholos.node.protocols import BatchState, ProtocolError, envelope_digest
from tholos.node.rounds import Checked, ItemSigner, NodeContext, SchemeProtocol
from tholos.node.store import take_rows
from tholos.node.vault import KeyVault
from tholos.rpc import node_pb2 as pb
from tholos.transport.e2e import EnvelopeError, context

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


class EcdsaPresign(SchemeProtocol):
    """`ecdsa-presign`: fills this node's presignature pool for one key (three phases)."""

    name = "ecdsa-presign"

    def __init__(self, node: NodeContext) -> None:
        super().__init__(node)
        self.presigs = presig_store(node)

    def step(self, req: pb.ProtocolRequest, batch: str, body: dict[str, Any]) -> pb.Envelope:
        return self._presign(req, batch, body)

    def _presign(self, req: pb.ProtocolRequest, batch: str, body: dict[str, Any]) -> pb.Envelope:
        r = self.node.runner
        r._expire()
        if req.phase == "round1":
            if batch in r.batches:
                raise ProtocolError(f"batch {batch} already started")
            participants = sorted(int(p) for p in body["participants"])
            if self.node.node_id not in participants:
                raise ProtocolError("this node is not a participant")
            sessions = body["sessions"]
            if not isinstance(sessions, list) or len(sessions) != 1:
                raise ProtocolError("one key per presign batch")
            key_id = str(sessions[0]["key_id"])
            count = int(sessions[0]["count"])
            if not 0 < count <= MAX_PRESIGS_PER_BATCH:
                raise ProtocolError(f"count must be in 1..{MAX_PRESIGS_PER_BATCH}")
            self.node.record(key_id, "ecdsa", sessions[0].get("epoch"))
            share: KeyShare[Any] = self.node.vault.record(key_id).share
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
            mine = private.pop(self.node.node_id)
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
        r = self.node.runner
        got = r._collect(state, "round1", envelopes)
        state.echo = envelope_digest(envelopes)
        _key_id, threshold, machines, mine = state.pending
        inbox: dict[int, list[Any]] = {self.node.node_id: mine}
        culprits = []
        for i, b in got.items():
            if i == self.node.node_id:
                continue
            try:
                blob = bytes.fromhex(b["private"][str(self.node.node_id)])
                plain = r.identity.decrypt_from(
                    i,
                    context("ecdsa-presign-private", "round1", state.batch, self.node.node_id),
                    blob,
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
        r = self.node.runner
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
            rows.append((pid, self.node.vault._barrier.seal(PRESIG_TABLE, pid, secret)))
            publics.append(presig.public.to_dict())
        self.presigs.put(key_id, rows)
        echo = envelope_digest(envelopes)
        return r._seal(state, "finish", {"echo": echo, "results": {key_id: publics}})


class EcdsaSigner(ItemSigner):
    """`ecdsa-sign`: s_i for a 32-byte digest and one of this node's presignatures."""

    name = "ecdsa-sign"

    def __init__(self, node: NodeContext) -> None:
        super().__init__(node)
        self.presigs = presig_store(node)

    def check(self, it: dict[str, Any]) -> Checked:
        rid = str(it.get("request_id", ""))
        key_id = str(it["key_id"])
        rec = self.node.record(key_id, "ecdsa", it.get("epoch"))
        digest = bytes.fromhex(it["digest"])
        if len(digest) != 32:
            raise ProtocolError("ECDSA signs a 32-byte digest")
        path = str(it.get("path", ""))
        pid = bytes.fromhex(it["presig"])
        tweak = rec.scheme.tweak(rec.public, rec.meta, path)
        self.node.policy(rid, key_id, digest, path)
        return Checked(rid, rec, digest, path, pid, tweak)

    def shares(self, accepted: Sequence[Checked]) -> dict[str, Any]:
        """s_i for each accepted item; every presignature used is deleted (committed) first
        (by the signer process when the node has one)."""
        items = [(a.rid, a.key_id, a.presig, a.message, a.tweak) for a in accepted]
        signer = self.node.vault.signer
        got = (
            signer.ecdsa_sign(items)
            if signer is not None
            else presig_shares(self.node.vault, self.presigs, items)
        )
        results: dict[str, Any] = {}
        for rid, s in got.items():
            if isinstance(s, str):
                results[rid] = {"error": s}
            else:
                s = self.node.vault.hooks.ecdsa_share(s)
                results[rid] = {"s": s.to_bytes(32, "big").hex()}
        return results


PresigItem = tuple[str, str, bytes, bytes, int]  # request id, key id, presig id, digest, tweak


def presig_shares(
    vault: KeyVault, presigs: PresigStore, items: Sequence[PresigItem]
) -> dict[str, int | str]:
    """s_i (or an error) by request id; the presignatures are deleted (committed) before any
    share is computed, so none is used twice even across a crash."""
    results: dict[str, int | str] = {}
    taken = presigs.take([pid for _r, _k, pid, _d, _t in items])
    for rid, key_id, pid, digest, tweak in items:
        got = taken.pop(pid, None)
        if got is None:
            results[rid] = "VaultError: unknown or used presignature"
            continue
        try:
            if got[0] != key_id:
                raise ProtocolError("presignature belongs to another key")
            rec = vault.record(key_id)
            plain = vault._barrier.open(PRESIG_TABLE, pid, got[1])
            presig = _expand(vault.node_id, json.loads(plain))
            results[rid] = sign_share(presig, rec.share, digest, tweak=tweak).s
        except Exception as exc:
            results[rid] = f"{type(exc).__name__}: {exc}"
    return results


def presig_store(node: NodeContext) -> PresigStore:
    """The node's one PresigStore (shared by presigning and signing), created on first use."""
    store = getattr(node, "_presigs", None)
    if store is None:
        store = PresigStore(node.db)
        node._presigs = store  # type: ignore[attr-defined]
    return store
