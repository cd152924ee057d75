"""Governed threshold ECDSA and BLS signing on a node: the checks of governed FROST requests.

An `ecdsa-sign` or `bls-sign` item of a governed cluster carries a `governance` field: the same
JSON blob a FROST `SignItem` carries (signing request, approvals, reservation receipts and journal
snapshots). The node checks the item's own fields first (key, refresh epoch, 32-byte digest,
presignature id: bad input is refused with no state change), then hands it to
`NodeGovernance.sign_batch` as a `SignItem` (request id, key, derivation path, message,
governance), which checks it against users, approvals and policy, marks the accepted requests
signed in its journal (durably), computes their shares and records every decision and share in
the audit chain. An ECDSA share is computed only after its presignature row is deleted in a
committed transaction. Items without a governance blob are refused, fail-closed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tholos.node.vault import ShareResult
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SigningRequest


class CheckedItem(Protocol):
    """What the governed path needs of a checked item (`node.rounds.Checked`)."""

    @property
    def key_id(self) -> str: ...
    @property
    def message(self) -> bytes: ...
    @property
    def path(self) -> str: ...


def refuse_plain(gov: Any, protocol: str, items: list[Any]) -> dict[str, Any]:
    """Refuse every item (a plain item in a governed cluster), recording each refusal in the
    audit chain before replying."""
    from tholos.audit import KIND_DECISION
    from tholos.governance import Refuse, decision_record

    why = Refuse("governed", f"{protocol} item without a governed request (approvals)")
    rids = [str(it.get("request_id", "")) if isinstance(it, dict) else "" for it in items]
    gov.audit.append_many([(KIND_DECISION, decision_record(r, b"", why)) for r in rids])
    return {r: {"error": f"PolicyRefused[{why.rule_id}]: {why.reason}"} for r in rids}


def sign_governed(
    protocol: str,
    check: Callable[[dict[str, Any]], CheckedItem],
    shares: Callable[[Sequence[Any]], dict[str, Any]],
    gov: Any,
    items: list[Any],
) -> dict[str, Any]:
    """Results by request id for the items of a governed `protocol` batch (`check` and `shares`
    are the protocol's per-item check and share computation)."""
    rids = [str(it.get("request_id", "")) if isinstance(it, dict) else "" for it in items]
    twice = {r for r, k in Counter(rids).items() if k > 1}
    plain = [it for it in items if not (isinstance(it, dict) and it.get("governance"))]
    results: dict[str, Any] = refuse_plain(gov, protocol, plain) if plain else {}
    results.update({r: {"error": f"ProtocolError: request id {r} twice in a batch"} for r in twice})
    sign_items: list[pb.SignItem] = []
    requests: list[SigningRequest] = []
    checked: dict[str, CheckedItem] = {}
    for it, rid in zip(items, rids, strict=True):
        if rid in results:  # plain (refused above) or repeated (none of its items is signed)
            continue
        try:
            blob = it["governance"]
            if not isinstance(blob, str):
                raise TypeError("governance must be a JSON string")
            c = check(it)
        except Exception as exc:  # refused before any check or journal write
            results[rid] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        checked[rid] = c
        sign_items.append(
            pb.SignItem(
                request_id=rid,
                key_id=c.key_id,
                message=c.message,
                path=c.path,
                governance=blob.encode(),
            )
        )
        requests.append(SigningRequest(rid, c.key_id, c.message, c.path))
    if not sign_items:
        return results

    def vault_sign(accepted: Sequence[SigningRequest]) -> list[ShareResult]:
        """Shares for the requests governance accepted (and marked signed) only."""
        out = shares([checked[r.request_id] for r in accepted])
        return [_share_result(r.request_id, out[r.request_id]) for r in accepted]

    for res in gov.sign_batch(sign_items, requests, vault_sign):
        results[res.request_id] = json.loads(res.share) if res.share else {"error": res.error}
    return results


def _share_result(rid: str, result: dict[str, Any]) -> ShareResult:
    if result.get("error"):
        return ShareResult(rid, error=str(result["error"]))
    return ShareResult(rid, share=json.dumps(result).encode())
