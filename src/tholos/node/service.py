"""The node's RPC handlers as plain methods over protobuf messages (wrapped by gRPC in server.py,
called directly by the in-memory transport in tests)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tholos import __version__
from tholos.node import key_state, repair, reshare
from tholos.node.governance import GovernanceRefused, NodeGovernance
from tholos.node.protocols import ProtocolError, ProtocolRunner
from tholos.node.scheme_protocols import PROTOCOLS as SCHEME_PROTOCOLS
from tholos.node.scheme_protocols import for_service as scheme_protocols
from tholos.node.store import NodeStore
from tholos.node.vault import KeyVault, VaultError
from tholos.rpc import node_pb2 as pb
from tholos.transport.e2e import Identity
from tholos.transport.refusal import RequestRefused

if TYPE_CHECKING:
    from tholos.node.attestation import NodeAttestation

log = logging.getLogger("tholos.node")
ATTESTATION_OPS = ("attest_challenge", "attest", "attest_peers", "attest_status")


class NodeService:
    def __init__(
        self,
        identity: Identity,
        store: NodeStore,
        vault: KeyVault,
        nonce_pool_max: int,
        min_threshold: int = 1,
    ) -> None:
        self.identity = identity
        self.store = store
        self.vault = vault
        self.protocols = ProtocolRunner(identity, vault, min_threshold)
        self.nonce_pool_max = nonce_pool_max
        self.governance: NodeGovernance | None = None  # set by server.main (node/governance.py)
        self.attestation: NodeAttestation | None = None  # set by server.main (node/attestation.py)

    def info(self, req: pb.InfoRequest) -> pb.InfoReply:
        pub = self.identity.public
        protections = self.protections()
        return pb.InfoReply(
            node_id=self.identity.node_id,
            identity_public_key=pub.signing_key,
            exchange_public_key=pub.exchange_key,
            nonces_available=self.store.count_nonces(),
            keys=self.store.count_keys(),
            version=__version__,
            fault=self.vault.hooks.name,
            stale_keys=sorted(self.vault.stale),
            broken_keys=sorted(self.vault.broken),  # the signer's, merged by protections()
            shares_unchecked=self.vault.unchecked,
            pending_refresh=self.store.count_pending(),
            protections=protections,
        )

    def protections(self) -> dict[str, str]:
        """Where shares are opened and, for a signer process, each of its protections as it
        reports them now (an unreachable signer says so)."""
        signer = self.vault.signer
        if signer is None:
            return {"signer": "off: shares are opened in the node process"}
        try:
            status = signer.status()
        except VaultError as exc:
            return {"signer": f"UNREACHABLE: {exc}"}
        self.vault.broken.update(status["broken"])  # found by the signer when it used a share
        self.vault.unchecked = int(status["unchecked"])  # its background scan's progress
        return {"signer": f"process {status['pid']}", **status["protections"]}

    def commitments(self, req: pb.CommitmentsRequest) -> pb.CommitmentsReply:
        return scheme_protocols(self).frost.commitments(req, self.nonce_pool_max)

    def sign_batch(self, req: pb.SignBatchRequest) -> pb.SignBatchReply:
        self._check_peers(c.signer for it in req.items for c in it.commitments)
        return scheme_protocols(self).frost.sign_batch(req)

    def _check_peers(self, senders: Iterable[int]) -> None:
        """Refuse a request carrying a peer's contribution unless that peer attested to a pinned
        measurement (node/attestation.py; nothing is checked while none is pinned)."""
        if self.attestation is None:
            return
        from tholos.node.attestation import PeerNotAttested

        try:
            self.attestation.check_peers(senders)
        except PeerNotAttested as exc:
            log.warning("refused: %s", exc)
            raise RequestRefused(str(exc)) from None  # not proven to misbehave: no culprits

    def _attestation_op(self, req: pb.GovernanceRequest) -> pb.GovernanceReply:
        from tholos.attestation import AttestationError

        if self.attestation is None:
            raise RequestRefused("this node has no attestation configured")
        try:
            body = json.loads(req.payload or b"{}")
            out = self.attestation.handle(req.op, body)
        except (AttestationError, ValueError) as exc:
            log.warning("attestation %s refused: %s", req.op, exc)
            raise RequestRefused(f"attestation: {exc}") from None
        return pb.GovernanceReply(payload=json.dumps(out, separators=(",", ":")).encode())

    def governance_op(self, req: pb.GovernanceRequest) -> pb.GovernanceReply:
        if req.op in ATTESTATION_OPS:
            return self._attestation_op(req)
        if self.governance is None:
            raise RequestRefused("this node has no governance configured")
        try:
            return self.governance.handle(req)
        except GovernanceRefused as exc:
            log.warning("governance %s refused: %s", req.op, exc)
            raise RequestRefused(str(exc)) from None

    def protocol(self, req: pb.ProtocolRequest) -> pb.ProtocolReply:
        self._check_peers(e.sender for e in req.envelopes)
        try:
            if req.protocol in SCHEME_PROTOCOLS:  # by the scheme registry (node/scheme_protocols)
                return scheme_protocols(self).step(req)
            if req.protocol == "repair":
                return self._repair(req)
            if req.protocol == key_state.PROTOCOL:  # disable, enable, destroy
                return key_state.step(self, req)
            if req.protocol == reshare.PROTOCOL:
                return self._reshare(req)
            return self.protocols.step(req)
        except ProtocolError as exc:
            log.warning("%s/%s refused: %s culprits=%s", req.protocol, req.phase, exc, exc.culprits)
            raise RequestRefused(str(exc), exc.culprits) from None
        except (VaultError, KeyError, ValueError, TypeError) as exc:
            log.warning("%s/%s refused: %s", req.protocol, req.phase, exc)
            raise RequestRefused(f"{type(exc).__name__}: {exc}") from None

    def _reshare(self, req: pb.ProtocolRequest) -> pb.ProtocolReply:
        """A committee change (node/reshare.py): in a governed cluster only under the admins'
        committee change document (node/committee_governance.py); audited."""
        gov = self.governance
        if gov is not None and gov.state is not None:
            from tholos.node import committee_governance

            reply = committee_governance.for_service(self).step(req)
        else:
            reply = self.protocols.step(req)
        if gov is not None and req.phase in ("commit", "retire"):
            from tholos.audit import KIND_GOVERNANCE

            body = json.loads(reply.envelope.payload)
            gov.audit.append(KIND_GOVERNANCE, {"event": f"reshare_{req.phase}", **body})
        return reply

    def _repair(self, req: pb.ProtocolRequest) -> pb.ProtocolReply:
        """One phase of a share repair (node/repair.py), on the DKG runner's batch state."""
        self.protocols._expire()
        body = json.loads(req.payload or b"{}")
        batch = str(body.get("batch", ""))
        if not batch:
            raise ProtocolError("missing batch id")
        return pb.ProtocolReply(
            envelope=repair.step(self.protocols, req.phase, batch, body, req.envelopes)
        )


__all__ = ["NodeService", "RequestRefused"]
