"""Governed threshold ECDSA and BLS signing on a node: the checks of governed FROST requests.

An `ecdsa-sign` or `bls-sign` item of a governed cluster carries a `governance` field: the same
JSON blob a FROST `SignItem` carries (signing request, approvals, reservation receipts and journal
snapshots). The node checks the item's own fields first (key, refresh epoch, 32-byte digest,
presignature id: bad input is refused with no state change), then hands it to
`NodeGovernance.sign_batch` as a `SignItem` (request id, key, derivation path, message,
governance), which checks it against users, approvals and policy, marks the accepted requests
signed in its journal (durably), computes their shares and records every decision and share in
the audit chain. An ECDSA share is computed only after its presignature row is deleted in a
committed transaction. Items without a governance blob are refused, fail-closed, as before.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tholos.node.ecdsa_bls_dise import Checked, ExtraProtocols
from tholos.node.vault import ShareResult
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SigningRequest

if TYPE_CHECKING:
    from tholos.node.governance import NodeGovernance


def sign_governed(
    ext: ExtraProtocols, gov: NodeGovernance, protocol: str, items: list[Any]
) -> dict[str, Any]:
    """Results by request id for the `ecdsa-sign` or `bls-sign` items of a governed batch."""
    check, shares = ext.signer(protocol)
    rids = [str(it.get("request_id", "")) if isinstance(it, dict) else "" for it in items]
    twice = {r for r, k in Counter(rids).items() if k > 1}
    plain = [it for it in items if not (isinstance(it, dict) and it.get("governance"))]
    results: dict[str, Any] = ext._refuse_governed(gov, protocol, plain) if plain else {}
    results.update({r: {"error": f"ProtocolError: request id {r} twice in a batch"} for r in twice})
    sign_items: list[pb.SignItem] = []
    requests: list[SigningRequest] = []
    checked: dict[str, Checked] = {}
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
        key_id = c.rec.key_id
        sign_items.append(
            pb.SignItem(
                request_id=rid,
                key_id=key_id,
                message=c.message,
                path=c.path,
                governance=blob.encode(),
            )
        )
        requests.append(SigningRequest(rid, key_id, c.message, c.path))
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
