"""The interface of a scheme's signing at the gateway, and its job.

Each scheme is one `RoundScheme` module (gateway/frost.py, gateway/ecdsa.py, gateway/bls.py,
gateway/dise.py) registered in `gateway/scheme_protocols.py`, whose `RoundSigning` batches jobs
per scheme, chooses signers, asks the scheme for each job's fields (`items`), sends them in one
round trip (`exchange`: by default one `Protocol` round (`protocol`, `phase`); FROST: one
`SignBatch` carrying nonce commitments the nodes pre-shared) and hands the answers to the scheme
to combine. A culprit named by `combine` is quarantined and the job retried on other signers;
governed jobs carry their request's governance blob (gateway/governed_rounds.py).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from tholos.crypto.dise import EvalRequest
from tholos.crypto.keys import PublicKeyPackage
from tholos.gateway.store import KeyRow
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SCHEMES, Scheme

GOVERNANCE_TIMEOUT = 30.0
"""Seconds a signer may take over a governed batch (it checks approvals and quorum reads)."""

Answers = dict[int, dict[str, Any]]
"""Per signer that answered, its result per sign item id (a dict with "error" when refused)."""


@dataclass
class SchemeJob:
    """One signing (or DiSE evaluation) request for a key."""

    kind: str
    row: KeyRow
    public: PublicKeyPackage[Any]
    message: bytes  # ECDSA: 32-byte digest; BLS: message; DiSE: unused
    path: str = ""
    tweak: int = 0
    taproot: bool = False  # FROST bip340: the BIP-341 tweak
    merkle_root: bytes | None = None  # FROST bip340: the taproot script tree root
    eval_request: EvalRequest | None = None
    verify: bool = True  # DiSE: check every partial's proof here (else the client does)
    authorization: dict[str, Any] | None = None  # DiSE, governed: relayed untouched
    avoid: tuple[int, ...] = ()  # nodes not to ask (client-excluded, or asked once when governed)
    governance: str = ""  # ECDSA/BLS, governed: the request's JSON blob, checked by every node
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    excluded: dict[int, str] = field(default_factory=dict)
    signers: list[int] = field(default_factory=list)
    signature: bytes | None = None
    recovery_id: int | None = None
    partials: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    status: int = 200

    @property
    def key_id(self) -> str:
        return self.row.key_id

    @property
    def done(self) -> bool:
        return self.signature is not None or bool(self.partials)


class RoundScheme:
    """One scheme's part of a signing round at the gateway. Defaults fit one-round schemes that
    sign a message with no derivation over the `Protocol` RPC (BLS)."""

    kind = ""
    protocol = ""  # the `Protocol` RPC's protocol name (and the kind of its request records)
    phase = "sign"
    culprit = "invalid signature share"
    linger: dict[str, Any] = {}  # noqa: RUF012 - Batcher settings, read only
    #: Signers pre-share nonce commitments (FROST): signed by `POST /v1/keys/{id}/sign` and
    #: `POST /v1/sign` with taproot options; the others have their routes in scheme_routes.py.
    precommitted = False
    #: Every signer refusing the whole batch RPC means a bad request (400), not bad nodes.
    refusal_is_final = False

    def __init__(self, gw: Any) -> None:
        self.gw = gw  # the Gateway: keys, nodes, protocol driver
        self.nodes = gw.nodes

    async def close(self) -> None:
        """Stop background work (none by default)."""

    def prepare(self, job: SchemeJob, scheme: Scheme, eval_request: dict[str, Any] | None) -> None:
        """Check a new job's fields and fill what depends on them; raise GatewayError (400)."""
        from tholos.gateway.errors import GatewayError

        if job.path:
            raise GatewayError(409, "unsupported", f"{job.row.scheme} keys have no derivation")
        if eval_request is not None:
            raise GatewayError(409, "unsupported", f"{job.row.scheme} keys cannot evaluate")

    def left_out(self, job: SchemeJob) -> list[int]:
        """Holders not to ask up front (besides excluded and avoided ones)."""
        return []

    async def item(self, job: SchemeJob, signers: list[int]) -> tuple[dict[str, Any], Any] | None:
        """The scheme's fields of the job's item for `signers`, and what `combine` needs besides
        the answers (ECDSA: the presignature); None when the job cannot go out (error set)."""
        return {"message": job.message.hex()}, None

    async def items(
        self, jobs: list[SchemeJob], signers: list[int]
    ) -> list[tuple[dict[str, Any], Any] | None]:
        """`item` for each job, in order (a scheme may fetch what all need at once); raises
        NodeUnavailable / NodeRefused when a signer cannot take part (the jobs are retried)."""
        return [await self.item(j, signers) for j in jobs]

    async def exchange(
        self, signers: list[int], items: list[dict[str, Any]], timeout: float
    ) -> tuple[Answers, dict[int, str]]:
        """Send the batch's items to every signer in one round trip: the answers of those that
        replied, and why the others failed (unreachable, timed out, refused the whole batch)."""
        payload = json.dumps({"batch": uuid.uuid4().hex, "items": items}).encode()
        req = pb.ProtocolRequest(protocol=self.protocol, phase=self.phase, payload=payload)
        replies = await asyncio.gather(
            *(self.nodes.transport(s).protocol(req, timeout) for s in signers),
            return_exceptions=True,
        )
        replied, failed = self.nodes.sort_replies(
            signers,
            replies,
            lambda s, rep: "" if rep.envelope.sender == s else "answered for another node",
        )
        answers = {
            s: json.loads(rep.envelope.payload).get("results", {}) for s, rep in replied.items()
        }
        return answers, failed

    def bad_request(self, errors: dict[int, str]) -> bool:
        """Whether every signer's refusal is of the request itself (400), not of a node's state
        (a used presignature: retried with another one)."""
        return not any("presignature" in e for e in errors.values())

    def public_key(self, job: SchemeJob) -> bytes:
        """The public key a finished job's signature verifies under."""
        return SCHEMES[job.row.scheme].public_key(job.public, job.tweak)

    def give_back(self, job: SchemeJob, state: Any) -> None:
        """Every signer refused a governed job by policy: nothing of `state` was used."""

    def combine(self, job: SchemeJob, state: Any, got: dict[int, dict[str, Any]]) -> list[int]:
        """Combine the answers into the job; returns culprits that were left out (raises
        InvalidSignatureShare when too few valid contributions remain: the job is retried)."""
        raise NotImplementedError
