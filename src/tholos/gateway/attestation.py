"""The gateway's side of attestation: it runs the attestation sessions (node/attestation.py has
the node's side), leaves out of every protocol a node whose evidence does not verify or whose
measurement the governance document does not pin, and shows each node's measurement, provider,
hardware guarantee and protections in `GET /v1/cluster`.

A session: every node issues a fresh challenge (`attest_challenge`); the gateway adds its own;
every node attests to the digest of all of them (`attest`); the gateway verifies each, then hands
all the evidence to every node (`attest_peers`), which verifies its peers itself (the gateway is
untrusted: it can withhold evidence, and then the nodes refuse, but cannot forge it). Sessions run
at start, when a node comes back, after a governance document is relayed and every `interval`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tholos.attestation import (
    Attestation,
    AttestationError,
    NotPinned,
    PinListError,
    check_pinned,
)
from tholos.attestation.session import Challenges, Session, Verifiers
from tholos.audit import KIND_MEASUREMENT
from tholos.gateway.transport import NodeRefused, NodeUnavailable
from tholos.rpc import node_pb2 as pb

if TYPE_CHECKING:
    from tholos.audit import AuditLog
    from tholos.gateway.service import Gateway

log = logging.getLogger("tholos.gateway")
RPC_TIMEOUT = 10.0
SESSION_INTERVAL = 600.0  # seconds between sessions when nothing else asks for one
NOT_ENFORCED = "not enforced: no measurement is pinned (development); every build is admitted"


class ClusterAttestation:
    """The last session's outcome per node, and the loop that runs sessions."""

    def __init__(
        self,
        gw: Gateway,
        verifiers: Verifiers,
        audit: AuditLog | None = None,
        *,
        interval: float = SESSION_INTERVAL,
    ) -> None:
        self.gw = gw
        self.verifiers = verifiers
        self.audit = audit
        self.interval = interval
        self.pins: list[dict[str, Any]] = []
        self.policy_version: int | None = None
        self.last_session = 0.0  # monotonic
        self.last_session_wall = 0.0
        self.sessions = 0
        self._challenges = Challenges()
        self._seen: set[tuple[int, str, str, str | None]] = set()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def enforced(self) -> bool:
        return bool(self.pins)

    # -- the loop --------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def wake(self) -> None:
        """Ask for a new session soon (the policy may have changed)."""
        self._wake.set()

    def _came_back(self) -> bool:
        """A node went down after the last session and answers again (it may have restarted
        with another build, and it has forgotten its peers' evidence): while pins are enforced
        it is left out until the next session has verified it again."""
        back = [
            st
            for st in self.gw.nodes.nodes.values()
            if st.last_down > self.last_session and st.last_ok > st.last_down
        ]
        if self.pins:
            for st in back:
                st.attestation_refused = "came back: not attested since"
        return bool(back)

    async def _loop(self) -> None:
        while True:
            try:
                await self.session()
            except Exception:  # never let the loop die
                log.exception("attestation session failed")
            deadline = time.monotonic() + self.interval
            while time.monotonic() < deadline and not self._came_back():
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=0.5)
                    break
                except TimeoutError:
                    continue
            self._wake.clear()

    # -- one session -----------------------------------------------------------------------------
    async def _call(self, node: int, op: str, payload: Any) -> dict[str, Any]:
        req = pb.GovernanceRequest(op=op, payload=json.dumps(payload).encode())
        rep = await self.gw.nodes.transport(node).governance(req, RPC_TIMEOUT)
        out: dict[str, Any] = json.loads(rep.payload)
        return out

    async def _fan_out(
        self, ids: Sequence[int], op: str, payload: Any
    ) -> tuple[dict[int, dict[str, Any]], dict[int, str]]:
        replies = await asyncio.gather(
            *(self._call(i, op, payload) for i in ids), return_exceptions=True
        )
        ok: dict[int, dict[str, Any]] = {}
        failed: dict[int, str] = {}
        for i, r in zip(ids, replies, strict=True):
            if isinstance(r, NodeRefused):
                failed[i] = f"refused: {r.reason}"
            elif isinstance(r, NodeUnavailable):
                failed[i] = "unreachable"
            elif isinstance(r, BaseException):
                failed[i] = f"error: {type(r).__name__}"
            else:
                ok[i] = r
        return ok, failed

    async def _fetch_pins(self, ids: Sequence[int]) -> None:
        """The pins of the newest governance document the nodes hold (none: not governed)."""
        states, _ = await self._fan_out(ids, "state", {})
        docs = [s["document"] for s in states.values() if s.get("document")]
        if not docs:
            self.pins, self.policy_version = [], None
            return
        best = max(docs, key=lambda d: int(d["document"]["version"]))
        self.policy_version = int(best["document"]["version"])
        self.pins = list(best["document"]["policy"].get("allowed_measurements") or [])

    async def session(self) -> dict[str, Any]:
        """Run one session over every node that answers; returns the per-node outcome."""
        async with self._lock:
            return await self._session()

    async def _session(self) -> dict[str, Any]:
        nodes = self.gw.nodes
        ids = nodes.ids
        started = time.monotonic()
        await self._fetch_pins(ids)
        challenges, failed = await self._fan_out(ids, "attest_challenge", {})
        session = Session(
            {i: bytes.fromhex(str(r["challenge"])) for i, r in challenges.items()},
            self._challenges.issue(),
        )
        wire, more = await self._fan_out(
            list(session.challenges), "attest", {"session": session.to_dict()}
        )
        failed.update(more)
        self._challenges.take(session.gateway)
        nonce = session.nonce()
        for i, reason in failed.items():
            self._set(i, None, f"no attestation: {reason}")
        evidence: dict[str, Any] = {}
        for i, r in wire.items():
            evidence[str(i)] = r["attestation"]
            self._check(i, r, nonce)
        if evidence:
            peers, _ = await self._fan_out(
                [int(k) for k in evidence],
                "attest_peers",
                {"session": session.to_dict(), "attestations": evidence},
            )
            self._note_peers(peers)
        self.last_session, self.last_session_wall = started, time.time()
        self.sessions += 1
        return {str(i): nodes.nodes[i].attestation for i in ids}

    def _check(self, node: int, reply: dict[str, Any], nonce: bytes) -> None:
        peer = self.gw.roster.get(node)
        try:
            if peer is None:
                raise AttestationError(f"node {node} is not in the gateway's roster")
            att = Attestation.from_dict(reply["attestation"])
            verified = self.verifiers.verify(att, nonce=nonce, node_public_key=peer.signing_key)
        except (AttestationError, KeyError, TypeError) as exc:
            self._set(node, None, f"evidence does not verify: {exc}")
            return
        pinned: bool | None = None
        reason = NOT_ENFORCED
        if self.pins:
            try:
                label = check_pinned(self.pins, verified).label
                pinned, reason = True, f"pinned: {label}" if label else "pinned"
            except (NotPinned, PinListError) as exc:
                pinned, reason = False, str(exc)
        lm = verified.launch_measurement
        view = {
            **verified.to_dict(),
            "provider": verified.kind,
            "measurement": reply.get("measurement", {}),
            "pinned": pinned,
            "reason": reason,
            "refused_by": {},
        }
        self._set(node, view, "" if pinned is not False else f"measurement not pinned: {reason}")
        key = (node, verified.kind, verified.software_measurement.hex(), lm.hex() if lm else None)
        if key not in self._seen:
            self._seen.add(key)
            if self.audit is not None:
                self.audit.append(
                    KIND_MEASUREMENT,
                    {
                        "node": node,
                        "kind": key[1],
                        "software_measurement": key[2],
                        "launch_measurement": key[3],
                        "hardware_guarantee": verified.hardware_guarantee,
                        "pinned": pinned,
                    },
                )
        if pinned is False:
            log.error("node %d LEFT OUT: its measurement is not pinned: %s", node, reason)

    def _set(self, node: int, view: dict[str, Any] | None, refused: str) -> None:
        st = self.gw.nodes.nodes[node]
        if view is None:
            view = {
                "provider": None,
                "hardware_guarantee": False,
                "pinned": None,
                "reason": refused,
            }
            refused = refused if self.pins else ""  # development: reported, not enforced
        st.attestation = view
        st.attestation_refused = refused

    def _note_peers(self, replies: dict[int, dict[str, Any]]) -> None:
        """Record, on each node's view, which peers refused its evidence and why."""
        for verifier, rep in replies.items():
            for key, res in dict(rep.get("peers", {})).items():
                view = (
                    self.gw.nodes.nodes[int(key)].attestation
                    if int(key) in self.gw.nodes.nodes
                    else None
                )
                if view is None:
                    continue
                if not res.get("verified") or res.get("pinned") is False:
                    view.setdefault("refused_by", {})[str(verifier)] = res.get("reason", "")

    def summary(self) -> dict[str, Any]:
        """What `GET /v1/cluster` shows about attestation as a whole."""
        return {
            "enforced": self.enforced,
            "note": "pinned measurements enforced" if self.enforced else NOT_ENFORCED,
            "pinned": self.pins,
            "policy_version": self.policy_version,
            "verifiers": list(self.verifiers.kinds),
            "sessions": self.sessions,
            "last_session": self.last_session_wall or None,
        }


_BY_GATEWAY: dict[int, ClusterAttestation] = {}


def attach(
    gw: Gateway, verifiers: Verifiers | None = None, audit: AuditLog | None = None
) -> ClusterAttestation:
    """Create the gateway's attestation side (software evidence only, unless `verifiers`)."""
    if verifiers is None:
        from tholos.attestation.roots import VendorRoots

        verifiers = VendorRoots().verifiers()
    found = ClusterAttestation(gw, verifiers, audit)
    _BY_GATEWAY[id(gw)] = found
    return found


def of(gw: Gateway) -> ClusterAttestation:
    """The gateway's attestation side, created (software only, no audit) on first use."""
    found = _BY_GATEWAY.get(id(gw))
    return found if found is not None and found.gw is gw else attach(gw)


async def detach(gw: Gateway) -> None:
    """Stop the session loop and forget this gateway (Gateway.stop)."""
    found = _BY_GATEWAY.pop(id(gw), None)
    if found is not None and found.gw is gw:
        await found.stop()


def policy_changed(gw: Gateway) -> None:
    """A governance document was relayed: check every node against the new pins soon."""
    found = _BY_GATEWAY.get(id(gw))
    if found is not None and found.gw is gw:
        found.wake()
