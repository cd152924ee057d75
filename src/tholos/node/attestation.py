"""The node's side of attestation: it measures what it runs once at start, attests to it for each
session (`Governance` ops `attest_challenge`, `attest`, `attest_peers`), verifies its peers'
evidence itself (the gateway only relays it) and refuses protocol messages from a peer whose
verified measurement is not pinned by the governance document it adopted. With no pinned
measurement nothing is enforced (development); `Info`-like `attest_status` says which.

Node config (node.json), all optional:
    "attestation": {"provider": "software" | "sev-snp" | "tdx" | "auto",
                    "lock_file": "lock.txt", "amd_ark": "ark.pem", "amd_ask": "ask.pem",
                    "intel_pck_root": "root.pem"}
`auto` picks SEV-SNP or TDX when the guest device exists, else software; an explicit hardware
provider whose device is missing stops the node at start.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.attestation import (
    Attestation,
    AttestationError,
    AttestationProvider,
    Measurement,
    MeasurementError,
    NotPinned,
    PinListError,
    SevSnpProvider,
    SoftwareProvider,
    TdxProvider,
    VerifiedAttestation,
    check_pinned,
)
from tholos.attestation.measure import measure_running
from tholos.attestation.roots import VendorRoots
from tholos.attestation.session import Challenges, Session, Verifiers
from tholos.attestation.tsm import TSM_REPORT_ROOT, tsm_available
from tholos.audit import KIND_MEASUREMENT
from tholos.transport.e2e import Identity

if TYPE_CHECKING:
    from tholos.audit import AuditLog
    from tholos.node.governance import NodeGovernance
    from tholos.node.hooks import NodeHooks

log = logging.getLogger("tholos.node")
PROVIDERS = ("software", "sev-snp", "tdx", "auto")
DEV_SEV_GUEST = Path("/dev/sev-guest")
DEV_TDX_GUEST = Path("/dev/tdx_guest")
PEER_MAX_AGE = 3600.0  # seconds a peer's verified attestation is relied on without a new session


class PeerNotAttested(Exception):
    """A protocol message came from a peer this node has no pinned attestation of."""

    def __init__(self, message: str, culprits: tuple[int, ...]) -> None:
        super().__init__(message)
        self.culprits = culprits


@dataclass(frozen=True)
class AttestationSettings:
    provider: str = "software"
    lock_file: Path | None = None
    roots: VendorRoots = field(default_factory=VendorRoots)

    @classmethod
    def from_config(cls, config_path: Path) -> AttestationSettings:
        raw: dict[str, Any] = json.loads(config_path.read_text())
        a = raw.get("attestation") or {}
        if not isinstance(a, dict):
            raise ValueError("node config: attestation must be an object")
        provider = str(a.get("provider", "software"))
        if provider not in PROVIDERS:
            raise ValueError(f"node config: attestation provider {provider!r}: want {PROVIDERS}")
        base = config_path.parent
        lock = a.get("lock_file")
        return cls(
            provider,
            None if lock is None else (base / str(lock)).resolve(),
            VendorRoots.from_config(a, base),
        )


def _chosen_kind(provider: str) -> str:
    if provider != "auto":
        return provider
    if DEV_SEV_GUEST.exists():
        return "sev-snp"
    if DEV_TDX_GUEST.exists() or tsm_available(TSM_REPORT_ROOT):
        return "tdx"
    return "software"


def own_provider(kind: str, identity: Identity, measurement: Measurement) -> AttestationProvider:
    """The provider that makes this node's evidence; ValueError when its device is missing."""
    pub = identity.public.signing_key
    if kind == "software":
        key = Ed25519PrivateKey.from_private_bytes(identity.secret[:32])
        return SoftwareProvider(key, measurement.digest)
    if kind == "sev-snp":
        if not (DEV_SEV_GUEST.exists() or tsm_available(TSM_REPORT_ROOT)):
            raise ValueError(f"attestation provider sev-snp: no {DEV_SEV_GUEST} nor configfs-tsm")
        return SevSnpProvider(node_public_key=pub, software_measurement=measurement.digest)
    if not tsm_available(TSM_REPORT_ROOT):
        raise ValueError(f"attestation provider tdx: no configfs-tsm at {TSM_REPORT_ROOT}")
    return TdxProvider(node_public_key=pub, software_measurement=measurement.digest)


def measure(settings: AttestationSettings) -> Measurement:
    """What this node runs; ValueError when the distribution cannot be measured."""
    import tholos

    try:
        return measure_running(
            Path(tholos.__file__).parent, tholos.__version__, lock_file=settings.lock_file
        )
    except MeasurementError as exc:
        raise ValueError(f"attestation: {exc}") from None


class NodeAttestation:
    """This node's measurement and evidence, and its peers' verified attestations."""

    def __init__(
        self,
        identity: Identity,
        measurement: Measurement,
        provider: AttestationProvider,
        verifiers: Verifiers,
        pins: Callable[[], Sequence[Mapping[str, Any]]],
        audit: AuditLog | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity = identity
        self.measurement = measurement
        self.provider = provider
        self.verifiers = verifiers
        self._pins = pins
        self.audit = audit
        self._clock = clock
        self._challenges = Challenges(clock)
        self._lock = threading.Lock()
        self.peers: dict[int, tuple[VerifiedAttestation, float]] = {}
        self.refused: dict[int, str] = {}  # peers whose last evidence did not verify, and why
        self._seen: set[tuple[str, str, str, str | None]] = set()
        if audit is not None:
            for p in audit.payloads(KIND_MEASUREMENT):
                self._seen.add(_seen_key(p))
        self._record(
            identity.node_id,
            {
                "kind": provider.kind,
                "software_measurement": measurement.hex,
                "launch_measurement": None,
                "hardware_guarantee": provider.kind != "software",
                "version": measurement.version,
                "editable": measurement.editable,
            },
        )

    # -- pins ------------------------------------------------------------------------------------
    def pins(self) -> Sequence[Mapping[str, Any]]:
        return self._pins()

    @property
    def enforced(self) -> bool:
        return bool(self.pins())

    def _pinned(self, verified: VerifiedAttestation) -> tuple[bool, str]:
        pins = self.pins()
        if not pins:
            return True, "not enforced: no measurement is pinned"
        try:
            label = check_pinned(pins, verified).label
        except (NotPinned, PinListError) as exc:
            return False, str(exc)
        return True, f"pinned: {label}" if label else "pinned"

    # -- audit -----------------------------------------------------------------------------------
    def _record(self, node_id: int, body: dict[str, Any]) -> None:
        payload = {"node": node_id, **body}
        key = _seen_key(payload)
        if key in self._seen:
            return
        self._seen.add(key)
        if self.audit is not None:
            self.audit.append(KIND_MEASUREMENT, payload)

    # -- ops -------------------------------------------------------------------------------------
    def handle(self, op: str, body: Any) -> dict[str, Any]:
        with self._lock:
            if op == "attest_challenge":
                return {
                    "node_id": self.identity.node_id,
                    "challenge": self._challenges.issue().hex(),
                }
            if op == "attest":
                return self._attest(body)
            if op == "attest_peers":
                return self._attest_peers(body)
            if op == "attest_status":
                return self.status()
        raise AttestationError(f"unknown attestation op {op!r}")

    def _attest(self, body: Any) -> dict[str, Any]:
        session = Session.from_dict(body.get("session") if isinstance(body, dict) else None)
        att = self.provider.evidence(session.nonce())
        return {
            "node_id": self.identity.node_id,
            "attestation": att.to_dict(),
            "measurement": self.measurement.to_dict(),
        }

    def _attest_peers(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("attestations"), dict):
            raise AttestationError("attest_peers needs {session, attestations}")
        session = Session.from_dict(body.get("session"))
        mine = session.challenges.get(self.identity.node_id)
        if mine is None:
            raise AttestationError("the session holds no challenge of this node")
        self._challenges.take(mine)  # fresh, issued here, once: no replay
        nonce = session.nonce()
        out: dict[str, Any] = {}
        for key, wire in body["attestations"].items():
            peer = int(key)
            if peer == self.identity.node_id:
                continue
            out[str(peer)] = self._accept(peer, wire, nonce)
        return {"node_id": self.identity.node_id, "peers": out, "enforced": self.enforced}

    def _accept(self, peer: int, wire: Any, nonce: bytes) -> dict[str, Any]:
        identity = self.identity.peers.get(peer)
        try:
            if identity is None:
                raise AttestationError(f"node {peer} is not in this node's roster")
            att = Attestation.from_dict(wire if isinstance(wire, dict) else {})
            verified = self.verifiers.verify(att, nonce=nonce, node_public_key=identity.signing_key)
        except AttestationError as exc:
            self.peers.pop(peer, None)
            self.refused[peer] = str(exc)
            log.warning("attestation of node %d refused: %s", peer, exc)
            return {"verified": False, "reason": str(exc)}
        ok, why = self._pinned(verified)
        self.peers[peer] = (verified, self._clock())
        self.refused.pop(peer, None)
        lm = verified.launch_measurement
        self._record(
            peer,
            {
                "kind": verified.kind,
                "software_measurement": verified.software_measurement.hex(),
                "launch_measurement": lm.hex() if lm is not None else None,
                "hardware_guarantee": verified.hardware_guarantee,
                "pinned": ok if self.enforced else None,
            },
        )
        if not ok:
            log.warning("node %d runs an unpinned build: %s", peer, why)
        return {"verified": True, "pinned": ok, "reason": why}

    # -- the check of every protocol message -----------------------------------------------------
    def check_peers(self, senders: Iterable[int]) -> None:
        """Refuse (PeerNotAttested naming them) when a sender has no fresh verified attestation
        of a pinned measurement. Nothing is checked while no measurement is pinned."""
        pins = self.pins()
        if not pins:
            return
        now = self._clock()
        bad: dict[int, str] = {}
        for peer in set(senders) - {self.identity.node_id}:
            got = self.peers.get(peer)
            if got is None:
                bad[peer] = self.refused.get(peer, "no attestation of it in this session")
            elif now - got[1] > PEER_MAX_AGE:
                bad[peer] = "its attestation is too old: a new attestation session is needed"
            else:
                try:
                    check_pinned(pins, got[0])
                except (NotPinned, PinListError) as exc:
                    bad[peer] = str(exc)
        if bad:
            why = "; ".join(f"node {i}: {r}" for i, r in sorted(bad.items()))
            raise PeerNotAttested(
                f"refused: peer measurement not pinned ({why})", tuple(sorted(bad))
            )

    def status(self) -> dict[str, Any]:
        own = self.provider.kind
        peers: dict[str, Any] = {}
        for peer, (v, _) in sorted(self.peers.items()):
            ok, why = self._pinned(v)
            peers[str(peer)] = {**v.to_dict(), "pinned": ok, "reason": why}
        for peer, reason in sorted(self.refused.items()):
            peers[str(peer)] = {"verified": False, "reason": reason}
        return {
            "node_id": self.identity.node_id,
            "provider": own,
            "hardware_guarantee": own != "software",
            "measurement": self.measurement.to_dict(),
            "enforced": self.enforced,
            "pins": len(self.pins()),
            "verifiers": list(self.verifiers.kinds),
            "peers": peers,
        }


def _seen_key(p: Mapping[str, Any]) -> tuple[str, str, str, str | None]:
    lm = p.get("launch_measurement")
    return (
        str(p.get("node")),
        str(p.get("kind")),
        str(p.get("software_measurement")),
        None if lm is None else str(lm),
    )


def pins_of(governance: NodeGovernance) -> Callable[[], Sequence[Mapping[str, Any]]]:
    """The measurements pinned by the governance document `governance` adopted last (none in
    development mode), re-read after every adoption."""
    cache: dict[bytes, list[dict[str, Any]]] = {}

    def pins() -> list[dict[str, Any]]:
        state = governance.state
        if state is None:
            return []
        found = cache.get(state.hash)
        if found is None:
            allowed = state.policy.allowed_measurements or ()
            found = [m.model_dump(mode="json") for m in allowed]
            cache.clear()
            cache[state.hash] = found
        return found

    return pins


def build(
    config_path: Path,
    identity: Identity,
    hooks: NodeHooks,
    pins: Callable[[], Sequence[Mapping[str, Any]]],
    audit: AuditLog | None,
) -> NodeAttestation:
    """The node's attestation from its config; ValueError (start-up refused) when the chosen
    provider's device is missing or the distribution cannot be measured."""
    settings = AttestationSettings.from_config(config_path)
    measured = hooks.measurement(measure(settings))
    kind = _chosen_kind(settings.provider)
    provider = own_provider(kind, identity, measured)
    if kind == "software":
        log.warning(
            "node %d attests with the SOFTWARE provider: self-measured, no hardware guarantee",
            identity.node_id,
        )
    if measured.editable:
        log.warning(
            "node %d runs an editable install: its measurement is not one to pin", identity.node_id
        )
    log.info("node %d measurement %s (%s)", identity.node_id, measured.hex, kind)
    return NodeAttestation(identity, measured, provider, settings.roots.verifiers(), pins, audit)
