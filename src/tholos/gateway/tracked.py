"""A governed signing request as the gateway tracks it through its three steps, and what every
scheme's step 3 shares: the message, the governance blob sent to each signer, a node's refusal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from tholos.gateway.errors import GatewayError
from tholos.governance import Approval, SigningRequest

POLICY_RE = re.compile(r"^PolicyRefused\[([^\]]*)\]: (.*)$", re.S)


@dataclass
class Tracked:
    """A governed request as the gateway tracks it through the three steps."""

    request: SigningRequest
    approvals: list[Approval]
    status: str = "created"
    receipts: dict[int, dict[str, Any]] = field(default_factory=dict)
    refusals: dict[int, dict[str, str]] = field(default_factory=dict)
    signers: list[int] = field(default_factory=list)
    signature: str = ""
    public_key: str = ""
    error: str = ""
    transaction: dict[str, Any] = field(default_factory=dict)
    """A signed chain transaction: raw, encoding, txid, psbt (bitcoin), signatures per target."""
    turned_away: GatewayError | None = None
    """Refused by the gateway before it was stored (one item of a batch whose transaction's
    nonce another request holds): never saved, no node asked; status `refused`."""

    _digest: str = ""
    _request_json: str = ""
    _approvals_json: str = ""
    _approvals_of: tuple[Approval, ...] = ()

    @property
    def request_id(self) -> str:
        return self.request.intent.request_id

    def request_json(self) -> str:
        """The request's JSON, encoded once (stored, and sent to every signer)."""
        if not self._request_json:
            self._request_json = self.request.model_dump_json()
        return self._request_json

    def approvals_json(self) -> str:
        """The approvals as a JSON array, re-encoded only when the approvals change."""
        if (
            not self._approvals_json
            or len(self._approvals_of) != len(self.approvals)
            or any(a is not b for a, b in zip(self._approvals_of, self.approvals, strict=True))
        ):
            self._approvals_of = tuple(self.approvals)
            self._approvals_json = "[" + ",".join(a.model_dump_json() for a in self.approvals) + "]"
        return self._approvals_json

    @property
    def digest(self) -> str:
        if not self._digest:
            self._digest = self.request.digest().hex()
        return self._digest

    def brief(self) -> dict[str, Any]:
        """What a batch call returns per request."""
        out: dict[str, Any] = {"request_id": self.request_id, "status": self.status}
        if self.signature:
            out.update(signature=self.signature, public_key=self.public_key, signers=self.signers)
        elif self.transaction:
            out.update(transaction=self.transaction, signers=self.signers)
        elif self.turned_away is not None:
            e = self.turned_away
            out.update(refusals={}, error=str(e), code=e.code, http_status=e.status)
        else:
            out.update(refusals={str(k): v for k, v in sorted(self.refusals.items())})
            out["error"] = self.error
        return out

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "request_id": self.request_id,
            "status": self.status,
            "intent": self.request.intent.model_dump(mode="json"),
            "digest": self.digest,
            "approvals": [a.approver for a in self.approvals],
            "reserved_on": sorted(i for i, r in self.receipts.items() if is_pending(r)),
            "refusals": {str(k): v for k, v in sorted(self.refusals.items())},
            "signers": self.signers,
        }
        if self.signature:
            out["signature"] = self.signature
            out["public_key"] = self.public_key
        if self.transaction:
            out["transaction"] = self.transaction
        if self.error:
            out["error"] = self.error
        return out


def is_pending(receipt: dict[str, Any]) -> bool:
    return bool(receipt.get("entry", {}).get("status") == "pending")


def refusal(reason: str) -> dict[str, str]:
    m = POLICY_RE.match(reason)
    if m:
        return {"rule_id": m.group(1), "reason": m.group(2)}
    return {"rule_id": "node", "reason": reason}


def governance_blob(t: Tracked, snapshots: list[dict[str, Any]]) -> str:
    """The `governance` field every signer checks: request, approvals, receipts, snapshots."""
    # Pydantic's serializer and string joins: this runs once per request per batch.
    receipts = [t.receipts[i] for i in sorted(t.receipts)]
    return (
        '{"request":'
        + t.request_json()
        + ',"approvals":'
        + t.approvals_json()
        + ',"receipts":'
        + (json.dumps(receipts) if receipts else "[]")
        + ',"snapshots":'
        + (json.dumps(snapshots) if snapshots else "[]")
        + "}"
    )


def request_message(request: SigningRequest) -> bytes:
    """The message signers sign: what the chain's parser derives (raw payloads: `data`).

    A plain parse: every node parses the payload strictly (canonical form, fields bound to the
    intent) and refuses a message that differs from it, so the gateway need not check twice."""
    try:
        obj = json.loads(request.payload_bytes())
        return bytes.fromhex(str(obj["data"]))
    except (ValueError, KeyError, TypeError):
        return b""


def request_merkle_root(request: SigningRequest) -> bytes | None:
    """The BIP341 script tree root of a taproot intent (None: key-path only or no tweak)."""
    root = request.intent.merkle_root
    return bytes.fromhex(root) if root else None
