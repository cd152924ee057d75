"""Key lifecycle on a node (`key-state` protocol): disable, enable, destroy one key.

The state is the node's own (a row in its database), so a gateway that lies cannot sign with a
key the node was told to disable, short of telling it to enable the key again. In a governed
cluster the gateway cannot do even that: every change needs a key change document signed by the
admin quorum (tholos.governance.key_changes), which this node checks itself and applies once
(its nonce is kept: a replayed document is refused). Destroy deletes the share durably (secure delete, WAL checkpointed)
and is idempotent (a node without the share says so). Every change goes to the node's audit
chain and is acknowledged in an envelope signed by the node's identity key.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tholos.audit import KIND_GOVERNANCE
from tholos.node.governance import GovernanceRefused
from tholos.node.protocols import ProtocolError
from tholos.rpc import node_pb2 as pb
from tholos.transport.e2e import context

if TYPE_CHECKING:
    from tholos.node.service import NodeService

PROTOCOL = "key-state"
PHASES = ("disable", "enable", "destroy")


def step(service: NodeService, req: pb.ProtocolRequest) -> pb.ProtocolReply:
    """Apply one lifecycle change and return the node's signed acknowledgement."""
    if req.phase not in PHASES:
        raise ProtocolError(f"unknown key-state change {req.phase!r}; known: {', '.join(PHASES)}")
    try:
        body = json.loads(req.payload or b"{}")
        key_id = str(body["key_id"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ProtocolError("a key-state request names its key_id") from None
    vault = service.vault

    def apply() -> dict[str, Any]:
        out: dict[str, Any] = {"key_id": key_id, "change": req.phase, "node": vault.node_id}
        if req.phase == "destroy":
            out["destroyed"] = vault.destroy(key_id)  # False: this node held no share (any more)
        else:
            vault.set_disabled(key_id, req.phase == "disable")
        return out

    gov = service.governance
    if gov is not None and gov.state is not None:
        if body.get("change") is None:
            raise ProtocolError(
                f"{req.phase} in a governed cluster needs a key change document signed by the "
                "admin quorum (`tholos keys change`): the key is unchanged"
            )
        try:
            out = gov.apply_key_change(body["change"], key_id, req.phase, apply)
        except GovernanceRefused as exc:
            raise ProtocolError(str(exc)) from None
    else:
        out = apply()
        if gov is not None:
            gov.audit.append(KIND_GOVERNANCE, {"event": f"key_{req.phase}", **out})
    payload = json.dumps(out, separators=(",", ":"), sort_keys=True).encode()
    sig = service.identity.sign(context(PROTOCOL, req.phase, key_id), payload)
    return pb.ProtocolReply(
        envelope=pb.Envelope(sender=vault.node_id, payload=payload, signature=sig)
    )
