"""Driving batched multi-party protocols (DKG, refresh) across the nodes, and key import.

The gateway only relays: it sends each phase to every participant with the envelopes of the
previous phase, and checks at the end that every node signed the same result. Nodes verify each
other's envelopes and echoes themselves; the gateway verifies the final signatures too, so it never
records a key that some node did not confirm.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tholos.gateway.nodes import NodeSet
from tholos.gateway.transport import NodeRefused, NodeUnavailable
from tholos.rpc import node_pb2 as pb
from tholos.transport.e2e import EnvelopeError, Identity, PeerIdentity, context

log = logging.getLogger("tholos.gateway")
PHASES: dict[str, tuple[str, ...]] = {
    "dkg": ("round1", "round2", "round3", "finish"),
    "refresh": ("round1", "round2", "round3", "finish"),  # commit: gateway/repair.py
    "reshare": ("round1", "round2", "round3", "finish"),  # commit, retire: gateway/committee.py
}


class ProtocolFailed(Exception):
    """A protocol run that did not finish: `culprits` misbehaved, `unavailable` did not answer;
    `refused_by_all` when every participant refused the request itself (nothing ran)."""

    def __init__(
        self,
        message: str,
        culprits: Iterable[int] = (),
        unavailable: Iterable[int] = (),
        refused_by_all: bool = False,
    ) -> None:
        self.culprits = tuple(sorted(set(culprits)))
        self.unavailable = tuple(sorted(set(unavailable)))
        self.refused_by_all = refused_by_all
        super().__init__(message)


@dataclass
class ProtocolResult:
    batch: str
    participants: list[int]
    results: dict[str, dict[str, Any]]  # session -> public key package dict
    excluded: dict[str, Any]
    finish: list[pb.Envelope] = field(default_factory=list)  # signed, for the refresh commit


class ProtocolDriver:
    def __init__(self, nodes: NodeSet, roster: dict[int, PeerIdentity], timeout: float) -> None:
        self.nodes = nodes
        # A verifier of node signatures (the gateway has no identity secret: zero key, never used to sign).
        self._verifier = Identity(0, bytes(64), dict(roster))
        self.timeout = timeout

    async def run(
        self, protocol: str, participants: list[int], sessions: list[dict[str, Any]]
    ) -> ProtocolResult:
        batch = uuid.uuid4().hex
        envelopes: list[pb.Envelope] = []
        finish: dict[int, dict[str, Any]] = {}
        for phase in PHASES[protocol]:
            body: dict[str, Any] = {"batch": batch}
            if phase == "round1":
                body.update(participants=participants, sessions=sessions)
            req = pb.ProtocolRequest(
                protocol=protocol,
                phase=phase,
                payload=json.dumps(body).encode(),
                envelopes=envelopes,
            )
            replies = await asyncio.gather(
                *(self.nodes.transport(i).protocol(req, self.timeout) for i in participants),
                return_exceptions=True,
            )
            culprits: set[int] = set()
            down: list[int] = []
            errors: list[str] = []
            refusals = 0
            new: list[pb.Envelope] = []
            for i, rep in zip(participants, replies, strict=True):
                if isinstance(rep, NodeUnavailable):
                    self.nodes.mark_down(i, str(rep))
                    down.append(i)
                    errors.append(f"node {i} unavailable")
                elif isinstance(rep, NodeRefused):
                    culprits.update(rep.culprits)
                    refusals += not rep.culprits
                    errors.append(f"node {i}: {rep.reason}")
                elif isinstance(rep, BaseException):
                    errors.append(f"node {i}: {rep!r}")
                elif rep.envelope.sender != i:
                    errors.append(f"node {i} answered as {rep.envelope.sender}")
                    culprits.add(i)
                else:
                    new.append(rep.envelope)
            if errors:
                raise ProtocolFailed(
                    f"{protocol} {phase} failed: " + "; ".join(errors),
                    culprits,
                    down,
                    refused_by_all=phase == "round1" and refusals == len(participants),
                )
            envelopes = new
            if phase == "finish":
                for env in new:
                    try:
                        self._verifier.verify(
                            env.sender,
                            context(protocol, "finish", batch),
                            env.payload,
                            env.signature,
                        )
                    except EnvelopeError as exc:
                        raise ProtocolFailed(str(exc), [env.sender]) from None
                    finish[env.sender] = json.loads(env.payload)
        first = finish[participants[0]]
        for i, b in finish.items():
            if b["results"] != first["results"]:
                raise ProtocolFailed(f"{protocol}: node {i} computed a different result")
        return ProtocolResult(
            batch, participants, first["results"], first.get("excluded", {}), envelopes
        )
