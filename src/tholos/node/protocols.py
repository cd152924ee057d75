"""Batched multi-party protocols run by a node under the gateway's direction (DKG, refresh,
reshare: node/reshare.py).

The crypto state machines (`tholos.crypto.dkg`) have four steps: round1 (broadcast commitments),
round2 (private shares), round3 (broadcast complaints), finish. Each maps to one RPC phase here; in
each phase the node takes the envelopes relayed by the gateway and returns one signed envelope.
Many keys travel together (a batch): one signature and one encryption per recipient per step.

- Broadcasts are made consistent by echo: with its round-2 and finish replies a node signs the hash
  of the complete set of broadcast envelopes it received; every node checks the others' echoes in
  the next step and aborts if they differ (the gateway showed different sets).
- Private shares are encrypted to the recipient (transport.e2e) and each is additionally signed by
  its dealer over `Round2Package.signing_bytes()`, so a complaint carries verifiable evidence.
- Refresh commits in two phases: at "finish" each node seals its new share durably beside the old
  one (still in use); "commit" shows it every participant's signed finish envelope and promotes
  the new share. Commit needs no in-memory state, so it can be re-sent after a crash
  (gateway/repair.py). Shares carry their refresh epoch; sign requests name the epoch expected.
- Share repair: node/repair.py.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tholos.crypto.dkg import ComplaintsPackage, Round1Package, Round2Package
from tholos.crypto.errors import CryptoError, CulpritError
from tholos.crypto.keys import KeyShare
from tholos.node import reshare
from tholos.node.vault import KeyRecord, KeyVault
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SCHEMES, Scheme
from tholos.transport.e2e import EnvelopeError, Identity, context, open_sealed

STATE_TTL = 120.0
EVIDENCE_CONTEXT = b"vss-round2-evidence"
#: One signature per (dealer, recipient, batch) over the SHA-256 digests of every private package
#: of the batch (`Round2Package.signing_bytes()`), instead of one signature per key: a complaint's
#: evidence is b"\x01" || signature || all the digests, and proves the revealed package is one of
#: them. The other digests reveal nothing: each hashes a uniformly random 32-byte share.
EVIDENCE_BATCH_CONTEXT = b"vss-round2-evidence-batch"


class ProtocolError(Exception):
    """A protocol step this node refuses; `culprits` names nodes proven to have misbehaved."""

    def __init__(self, message: str, culprits: Sequence[int] = ()) -> None:
        self.culprits = tuple(sorted(set(culprits)))
        super().__init__(message)


def envelope_digest(envelopes: Sequence[pb.Envelope]) -> str:
    h = hashlib.sha256(b"tholos-echo-v1")
    for e in sorted(envelopes, key=lambda e: e.sender):
        h.update(e.sender.to_bytes(4, "big") + len(e.payload).to_bytes(4, "big") + e.payload)
    return h.hexdigest()


@dataclass
class Session:
    session: str
    scheme: Scheme
    threshold: int
    meta: dict[str, Any]
    machine: Any = None


@dataclass
class BatchState:
    protocol: str
    batch: str
    participants: list[int]
    sessions: list[Session]
    phase: str = "round1"
    created: float = field(default_factory=time.monotonic)
    echo: str = ""
    pending: list[Any] = field(default_factory=list)


NEXT = {"round1": "round2", "round2": "round3", "round3": "finish"}


class ProtocolRunner:
    def __init__(self, identity: Identity, vault: KeyVault, min_threshold: int = 1) -> None:
        self.identity = identity
        self.min_threshold = min_threshold
        #: per reshare batch, the minimum threshold a governed node's committee change authorised
        self.authorised_min: dict[str, int] = {}
        self.vault = vault
        self.batches: dict[str, BatchState] = {}

    @property
    def node_id(self) -> int:
        return self.identity.node_id

    def _expire(self) -> None:
        now = time.monotonic()
        for b in [b for b, s in self.batches.items() if now - s.created > STATE_TTL]:
            del self.batches[b]

    def _seal(self, state: BatchState, phase: str, body: dict[str, Any]) -> pb.Envelope:
        body["batch"] = state.batch
        payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        sig = self.identity.sign(context(state.protocol, phase, state.batch), payload)
        return pb.Envelope(sender=self.node_id, payload=payload, signature=sig)

    def _collect(
        self, state: BatchState, phase: str, envelopes: Sequence[pb.Envelope]
    ) -> dict[int, dict[str, Any]]:
        got: dict[int, dict[str, Any]] = {}
        for env in envelopes:
            if env.sender not in state.participants or env.sender in got:
                raise ProtocolError(f"unexpected envelope from node {env.sender}")
            try:
                self.identity.verify(
                    env.sender,
                    context(state.protocol, phase, state.batch),
                    env.payload,
                    env.signature,
                )
            except EnvelopeError as exc:
                raise ProtocolError(
                    str(exc)
                ) from None  # the gateway may have forged it: no culprit
            body: dict[str, Any] = json.loads(env.payload)
            if body.get("batch") != state.batch:
                raise ProtocolError(f"envelope of another batch from node {env.sender}")
            got[env.sender] = body
        missing = set(state.participants) - set(got)
        if missing:
            raise ProtocolError(f"missing envelopes from nodes {sorted(missing)}")
        return got

    def _check_echo(self, got: dict[int, dict[str, Any]], expected: str) -> None:
        bad = sorted(i for i, b in got.items() if b.get("echo") != expected)
        if bad:
            raise ProtocolError(f"broadcast echo mismatch with nodes {bad}: inconsistent relay")

    def _evidence_ok(self, complaint: Any) -> bool:
        try:
            sig = bytes(complaint.evidence)
            if len(sig) > 65 and sig[0] == 1 and (len(sig) - 65) % 32 == 0:
                digests = sig[65:]
                mine = hashlib.sha256(complaint.revealed_package().signing_bytes()).digest()
                if mine not in {digests[k : k + 32] for k in range(0, len(digests), 32)}:
                    return False
                self.identity.verify(complaint.accused, EVIDENCE_BATCH_CONTEXT, digests, sig[1:65])
                return True
            self.identity.verify(
                complaint.accused,
                EVIDENCE_CONTEXT,
                complaint.revealed_package().signing_bytes(),
                sig,
            )
            return True
        except (EnvelopeError, CryptoError, ValueError, TypeError):
            return False

    # -- dispatch ----------------------------------------------------------------------------------
    def step(self, req: pb.ProtocolRequest) -> pb.ProtocolReply:
        self._expire()
        body = json.loads(req.payload or b"{}")
        batch = str(body.get("batch", ""))
        if not batch:
            raise ProtocolError("missing batch id")
        if req.protocol == "import" and req.phase == "store":
            return pb.ProtocolReply(envelope=self._import(batch, body))
        if req.protocol in ("refresh", reshare.PROTOCOL) and req.phase == "commit":
            return pb.ProtocolReply(envelope=self._commit(batch, body, req.envelopes, req.protocol))
        if req.protocol == reshare.PROTOCOL and req.phase == "retire":
            return pb.ProtocolReply(envelope=self._retire(batch, body))
        if req.protocol not in ("dkg", "refresh", reshare.PROTOCOL):
            raise ProtocolError(f"unknown protocol {req.protocol!r}")
        if req.phase == "round1":
            return pb.ProtocolReply(envelope=self._round1(req.protocol, batch, body))
        state = self.batches.get(batch)
        if state is None or state.protocol != req.protocol:
            raise ProtocolError(f"no {req.protocol} batch {batch} in progress on this node")
        if NEXT.get(state.phase) != req.phase:
            raise ProtocolError(f"phase {req.phase} not allowed after {state.phase}")
        try:
            env = getattr(self, "_" + req.phase)(state, req.envelopes)
        except Exception:
            self.batches.pop(batch, None)
            raise
        state.phase = req.phase
        if req.phase == "finish":
            self.batches.pop(batch, None)
        return pb.ProtocolReply(envelope=env)

    def _import(self, batch: str, body: dict[str, Any]) -> pb.Envelope:
        """Key import: the client split the key and sealed this node's share to its identity."""
        key_id = str(body["key_id"])
        if key_id != batch or self.vault.has_key(key_id):
            raise ProtocolError("bad or existing key id")
        scheme = SCHEMES[str(body["scheme"])]
        try:
            plain = open_sealed(self.identity, f"import|{self.node_id}".encode(), body["sealed"])
            share = KeyShare.import_secret(json.loads(plain))
        except (EnvelopeError, CryptoError, ValueError, KeyError) as exc:
            raise ProtocolError(f"cannot open the imported share: {exc}") from None
        if share.identifier != self.node_id or share.group is not scheme.group:
            raise ProtocolError("imported share is for another node or group")
        if share.public.to_dict() != body["public"]:
            raise ProtocolError("imported share does not match the announced public key package")
        share.public.check_consistent()
        meta = dict(body.get("meta", {}))
        self.vault.store_shares([(key_id, scheme, share, meta)])
        state = BatchState("import", batch, [self.node_id], [])
        return self._seal(state, "store", {"results": {key_id: share.public.to_dict()}})

    # -- the steps -----------------------------------------------------------------------------------
    def _round1(self, protocol: str, batch: str, body: dict[str, Any]) -> pb.Envelope:
        if batch in self.batches:
            raise ProtocolError(f"batch {batch} already started")
        participants = sorted(int(p) for p in body["participants"])
        if self.node_id not in participants:
            raise ProtocolError("this node is not a participant")
        sessions: list[Session] = []
        out: dict[str, Any] = {}
        announce: dict[str, Any] = {}
        ev = self._evidence_ok
        for s in body["sessions"]:
            sid = str(s["session"])
            if protocol == reshare.PROTOCOL:
                try:
                    scheme, meta, machine, announce[sid] = reshare.start_session(
                        self.vault,
                        s,
                        batch,
                        self.authorised_min.get(batch, self.min_threshold),
                        ev,
                    )
                except (reshare.ReshareRefused, CryptoError, KeyError, ValueError) as exc:
                    raise ProtocolError(f"reshare of {sid}: {exc}") from None
                sess = Session(sid, scheme, machine.threshold, meta, machine)
                if machine.is_dealer:
                    out[sid] = machine.round1().to_dict()
                else:
                    machine.skip_round1()
                sessions.append(sess)
                continue
            if protocol == "dkg":
                scheme = SCHEMES[str(s["scheme"])]
                if self.vault.has_key(sid):
                    raise ProtocolError(f"key {sid} exists already")
                sess = Session(sid, scheme, int(s["threshold"]), dict(s.get("meta", {})))
                if sess.threshold < self.min_threshold:
                    raise ProtocolError(
                        f"threshold {sess.threshold} is below this node's minimum {self.min_threshold}"
                    )
                sess.machine = scheme.dkg_participant(
                    self.node_id,
                    sess.threshold,
                    participants,
                    f"tholos-dkg|{sid}".encode(),
                    evidence_verifier=ev,
                )
            else:
                ctx = f"tholos-refresh|{sid}|{batch}".encode()

                def start(r: KeyRecord, ctx: bytes = ctx) -> Session:
                    machine = r.scheme.refresh_participant(
                        r.share, participants, ctx, evidence_verifier=ev
                    )
                    return Session(r.key_id, r.scheme, r.share.public.threshold, r.meta, machine)

                sess = self.vault.with_share(sid, start)
            out[sid] = sess.machine.round1().to_dict()
            sessions.append(sess)
        state = BatchState(protocol, batch, participants, sessions)
        self.batches[batch] = state
        first: dict[str, Any] = {"round1": out}
        if protocol == reshare.PROTOCOL:
            first["reshare"] = announce
        return self._seal(state, "round1", first)

    def _round2(self, state: BatchState, envelopes: Sequence[pb.Envelope]) -> pb.Envelope:
        got = self._collect(state, "round1", envelopes)
        state.echo = envelope_digest(envelopes)
        private: dict[int, dict[str, Any]] = {
            j: {} for j in state.participants if j != self.node_id
        }
        digests: dict[int, list[bytes]] = {j: [] for j in private}
        for sess in state.sessions:
            try:
                if state.protocol == reshare.PROTOCOL:
                    dealers = list(sess.machine.dealers)
                    agreed = reshare.agreed_meta(sess.session, dealers, got)
                    if not sess.machine.is_dealer:
                        sess.meta = {**sess.meta, **agreed}
                received = {
                    i: Round1Package.from_dict(b["round1"][sess.session])
                    for i, b in got.items()
                    if i != self.node_id and sess.session in b["round1"]
                }
                outgoing = sess.machine.round2(received)
            except CulpritError as exc:
                raise ProtocolError(f"round 1 of {sess.session}: {exc}", exc.culprits) from None
            except (CryptoError, KeyError, reshare.ReshareRefused) as exc:
                raise ProtocolError(
                    f"round 1 of {sess.session}: {type(exc).__name__}: {exc}"
                ) from None
            for j, msg in outgoing.items():
                digests[j].append(hashlib.sha256(msg.signing_bytes()).digest())
                private[j][sess.session] = {"package": msg.to_dict()}
        ctx = state.protocol + "-private"
        enc = {}
        for j, msgs in private.items():
            joined = b"".join(digests[j])
            sig = self.identity.sign(EVIDENCE_BATCH_CONTEXT, joined)
            plain = {"sessions": msgs, "evidence": sig.hex(), "digests": joined.hex()}
            enc[str(j)] = self.identity.encrypt_to(
                j, context(ctx, "round2", state.batch, j), json.dumps(plain).encode()
            ).hex()
        return self._seal(state, "round2", {"echo": state.echo, "private": enc})

    def _round3(self, state: BatchState, envelopes: Sequence[pb.Envelope]) -> pb.Envelope:
        got = self._collect(state, "round2", envelopes)
        self._check_echo(got, state.echo)
        ctx = state.protocol + "-private"
        inbox: dict[int, dict[str, Any]] = {}
        batch_evidence: dict[int, bytes] = {}
        for i, b in got.items():
            if i == self.node_id:
                continue
            try:
                blob = bytes.fromhex(b["private"][str(self.node_id)])
                plain = json.loads(
                    self.identity.decrypt_from(
                        i, context(ctx, "round2", state.batch, self.node_id), blob
                    )
                )
                batch_evidence[i] = (
                    b"\x01" + bytes.fromhex(plain["evidence"]) + bytes.fromhex(plain["digests"])
                )
                inbox[i] = dict(plain["sessions"])
            except (KeyError, ValueError, TypeError, EnvelopeError):
                inbox[i] = {}  # no readable message: the state machine files a complaint
        out: dict[str, Any] = {}
        for sess in state.sessions:
            received: dict[int, Any] = {}
            evidence: dict[int, bytes] = {}
            for i, msgs in inbox.items():
                m = msgs.get(sess.session)
                if m is None:
                    continue
                try:
                    received[i] = Round2Package.from_dict(m["package"])
                    evidence[i] = batch_evidence[i]
                except (CryptoError, KeyError, ValueError, TypeError):
                    continue
            try:
                out[sess.session] = sess.machine.round3(received, evidence).to_dict()
            except (CryptoError, KeyError) as exc:
                raise ProtocolError(
                    f"round 2 of {sess.session}: {type(exc).__name__}: {exc}"
                ) from None
        state.echo = envelope_digest(envelopes)
        return self._seal(state, "round3", {"round3": out})

    def _finish(self, state: BatchState, envelopes: Sequence[pb.Envelope]) -> pb.Envelope:
        got = self._collect(state, "round3", envelopes)
        echo3 = envelope_digest(envelopes)
        results: dict[str, Any] = {}
        to_store = []
        retire: list[str] = []
        excluded: dict[str, Any] = {}
        for sess in state.sessions:
            try:
                received = {
                    i: ComplaintsPackage.from_dict(b["round3"][sess.session])
                    for i, b in got.items()
                    if i != self.node_id and i in sess.machine.receivers
                }
                share = sess.machine.finish(received)
            except CulpritError as exc:
                raise ProtocolError(f"{sess.session}: {exc}", exc.culprits) from None
            except (CryptoError, KeyError) as exc:
                raise ProtocolError(f"{sess.session}: {type(exc).__name__}: {exc}") from None
            if sess.machine.excluded:
                excluded[sess.session] = {str(k): v for k, v in sess.machine.excluded.items()}
            meta = sess.meta
            if state.protocol != "dkg":
                meta = {**meta, "epoch": int(meta.get("epoch", 0)) + 1, "refresh": state.batch}
            if share is None:  # reshare: an old holder that is not a new member only dealt
                retire.append(sess.session)
                results[sess.session] = sess.machine.new_public.to_dict()
                continue
            to_store.append((sess.session, sess.scheme, share, meta))
            results[sess.session] = share.public.to_dict()
        if state.protocol == "dkg":
            self.vault.store_shares(to_store)
        else:  # phase 1 of the two-phase commit: durable, the current shares stay in use
            if to_store:
                self.vault.prepare_refresh(state.batch, to_store)
            for key_id in retire:  # its share goes at "retire", after every new member committed
                self.vault.mark_retiring(key_id, state.batch)
        return self._seal(
            state, "finish", {"echo": echo3, "results": results, "excluded": excluded}
        )

    def _commit(
        self,
        batch: str,
        body: dict[str, Any],
        envelopes: Sequence[pb.Envelope],
        protocol: str = "refresh",
    ) -> pb.Envelope:
        """Refresh phase 2: the prepared shares replace the old ones once every participant has
        finished (the gateway shows all finish envelopes, which must agree). Needs no memory of
        the earlier phases, so a node that crashed after finishing commits after its restart; a
        repeated commit is acknowledged without change."""
        self.vault.hooks.before_refresh_commit()
        keys = sorted(str(k) for k in body.get("keys", []))
        prepared = self.vault.pending_public(batch)
        done = [
            k
            for k in keys
            if k not in prepared
            and self.vault.has_key(k)
            and self.vault.record(k).meta.get("refresh") == batch
        ]
        missing = sorted(set(keys) - set(prepared) - set(done))
        if missing or not keys:
            raise ProtocolError(
                f"{protocol} {batch} was not prepared on this node for {missing or 'any key'}"
            )
        state = BatchState(protocol, batch, [], [])
        if prepared:
            first = next(iter(prepared.values()))
            state.participants = sorted(int(i) for i in first["verifying_shares"])
            if protocol == reshare.PROTOCOL:  # dealers that are not new members finished too
                state.participants = sorted(set(state.participants) | {e.sender for e in envelopes})
            got = self._collect(state, "finish", envelopes)
            mine = got[self.node_id]
            for k, pkg in prepared.items():
                if mine.get("results", {}).get(k) != pkg:
                    raise ProtocolError(
                        f"finish envelopes do not match the refresh of {k} prepared here"
                    )
            for i, b in got.items():
                if b.get("results") != mine.get("results") or b.get("echo") != mine.get("echo"):
                    raise ProtocolError(f"node {i} finished differently: refusing to commit")
            self.vault.commit_refresh(batch)
            if protocol == reshare.PROTOCOL:  # presignatures of the old committee are void
                self.vault.drop_presignatures(list(prepared))
        return self._seal(state, "commit", {"stored": keys})

    def _retire(self, batch: str, body: dict[str, Any]) -> pb.Envelope:
        """Reshare, old holder left out of the new committee: delete its share of each key once
        the gateway reports every new member committed. Only a share marked at this batch's
        finish goes; a repeated retire is acknowledged without change."""
        keys = sorted(str(k) for k in body.get("keys", []))
        if not keys:
            raise ProtocolError("retire names no key")
        marked = {k: self.vault.retiring(k) for k in keys}
        wrong = [k for k, b in marked.items() if b not in (batch, None)]
        unmarked = [k for k, b in marked.items() if b is None and self.vault.has_key(k)]
        if wrong or unmarked:
            raise ProtocolError(
                f"reshare {batch} did not leave this node out of {sorted(wrong + unmarked)}"
            )
        retired = [k for k, b in marked.items() if b == batch and self.vault.retire(k)]
        state = BatchState(reshare.PROTOCOL, batch, [self.node_id], [])
        return self._seal(state, "retire", {"retired": retired, "keys": keys})
