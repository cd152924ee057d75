"""The node's registry of scheme protocols: protocol name -> `SchemeProtocol` (node/rounds.py),
which dispatches the `Protocol` RPC by name and FROST's `Commitments` and `SignBatch` RPCs.

Adding a scheme means adding its module (node/<scheme>.py) and listing its protocols here.
"""

from __future__ import annotations

import json
from typing import Any

from tholos.node.bls import BlsSigner
from tholos.node.dise import DiseEvaluator
from tholos.node.ecdsa import EcdsaPresign, EcdsaSigner, PresigStore, presig_store
from tholos.node.frost import FrostSigner
from tholos.node.protocols import ProtocolError
from tholos.node.rounds import NodeContext, SchemeProtocol
from tholos.rpc import node_pb2 as pb

REGISTRY: dict[str, type[SchemeProtocol]] = {
    p.name: p for p in (FrostSigner, EcdsaPresign, EcdsaSigner, BlsSigner, DiseEvaluator)
}
PROTOCOLS = frozenset(n for n, p in REGISTRY.items() if p.rpc == "Protocol")
"""The protocols served by the `Protocol` RPC."""


class SchemeProtocols:
    """One node's instances of every registered scheme protocol, dispatched by name."""

    def __init__(self, node: NodeContext) -> None:
        self.node = node
        self.protocols = {name: cls(node) for name, cls in REGISTRY.items()}

    @property
    def presigs(self) -> PresigStore:
        """This node's sealed ECDSA presignatures."""
        return presig_store(self.node)

    @property
    def frost(self) -> FrostSigner:
        """The protocol serving the `Commitments` and `SignBatch` RPCs (pre-shared nonces)."""
        found = self.protocols[FrostSigner.name]
        assert isinstance(found, FrostSigner)
        return found

    def step(self, req: pb.ProtocolRequest) -> pb.ProtocolReply:
        protocol = self.protocols.get(req.protocol)
        if protocol is None or protocol.rpc != "Protocol":
            raise ProtocolError(f"unknown protocol {req.protocol}")
        body = json.loads(req.payload or b"{}")
        batch = str(body.get("batch", ""))
        if not batch:
            raise ProtocolError("missing batch id")
        return pb.ProtocolReply(envelope=protocol.step(req, batch, body))


def for_service(service: Any) -> SchemeProtocols:
    """The service's SchemeProtocols, created on first use."""
    found = getattr(service, "_scheme_protocols", None)
    if found is None:
        found = SchemeProtocols(
            NodeContext(
                service.protocols,
                service.vault,
                service.store.db,
                lambda: service.governance,
                service.store,
            )
        )
        service._scheme_protocols = found
    return found
