"""The interface of a scheme signed in rounds at the gateway (ECDSA, BLS, DiSE), and its job.

Each such scheme is one `RoundScheme` module (gateway/ecdsa.py, gateway/bls.py, gateway/dise.py)
registered in `gateway/scheme_protocols.py`, whose `RoundSigning` batches jobs per scheme, chooses
signers, sends one `Protocol` round (`protocol`, `phase`) to them and hands the answers to the
scheme to combine. A culprit named by `combine` is quarantined and the job retried on other
signers; governed jobs carry their request's governance blob (gateway/governed_rounds.py).
FROST keys are signed by `gateway/signing.py` (nonce pools, `SignBatch`) instead.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from tholos.crypto.dise import EvalRequest
from tholos.crypto.keys import PublicKeyPackage
from tholos.gateway.store import KeyRow
from tholos.schemes import Scheme


@dataclass
class SchemeJob:
    """One signing (or DiSE evaluation) request for a key of a round-signed scheme."""

    kind: str
    row: KeyRow
    public: PublicKeyPackage[Any]
    message: bytes  # ECDSA: 32-byte digest; BLS: message; DiSE: unused
    path: str = ""
    tweak: int = 0
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
    sign a message with no derivation (BLS)."""

    kind = ""
    protocol = ""
    phase = "sign"
    culprit = "invalid signature share"
    linger: dict[str, Any] = {}  # noqa: RUF012 - Batcher settings, read only

    def __init__(self, gw: Any) -> None:
        self.gw = gw  # the Gateway: keys, nodes, protocol driver
        self.nodes = gw.nodes

    async def close(self) -> None:
        """Stop background work (none by default)."""

    def prepare(self, job: SchemeJob, scheme: Scheme, eval_request: dict[str, Any] | None) -> None:
        """Check a new job's fields and fill what depends on them; raise GatewayError (400)."""
        from tholos.gateway.service import GatewayError

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

    def give_back(self, job: SchemeJob, state: Any) -> None:
        """Every signer refused a governed job by policy: nothing of `state` was used."""

    def combine(self, job: SchemeJob, state: Any, got: dict[int, dict[str, Any]]) -> list[int]:
        """Combine the answers into the job; returns culprits that were left out (raises
        InvalidSignatureShare when too few valid contributions remain: the job is retried)."""
        raise NotImplementedError
