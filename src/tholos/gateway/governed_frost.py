"""Step 3 of governed signing for FROST keys: `SignBatch` with the governance field to t signers
among the nodes holding the reservation, aggregation (culprits quarantined), retries elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tholos.audit import KIND_SIGNATURE_RELEASED, AuditLog
from tholos.crypto.errors import CryptoError, InvalidSignatureShare
from tholos.gateway.service import Gateway
from tholos.gateway.signing import MAX_ATTEMPTS
from tholos.gateway.store import KeyRow
from tholos.gateway.tracked import (
    POLICY_RE,
    Tracked,
    governance_blob,
    refusal,
    request_merkle_root,
    request_message,
)
from tholos.gateway.transport import NodeRefused, NodeUnavailable
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SCHEMES, Scheme, SignerCommitment, as_frost
from tholos.schemes import SigningRequest as SchemeRequest

log = logging.getLogger("tholos.gateway")
GOVERNANCE_TIMEOUT = 30.0


class GovernedFrost:
    """Step 3 for the requests of one FROST key."""

    def __init__(self, gw: Gateway, audit: AuditLog | None) -> None:
        self.gw = gw
        self.audit = audit

    async def sign(
        self,
        row: KeyRow,
        nodes: list[int],
        tracked: list[Tracked],
        snapshots: list[list[dict[str, Any]]],
    ) -> None:
        """Step 3 for the requests of one key, on `t` usable signers among `nodes` (those holding
        the reservation). A signer that fails (unreachable, timed out, or refusing for a reason
        other than policy) is named in the request's refusals and the requests retried on other
        nodes, as the ungoverned path does. The nodes of a failed attempt are not asked again for
        those requests: their journals refuse a second sign of a request id, and a retry on a new
        signer set is a fresh FROST session (fresh nonces), so no request is signed twice."""
        scheme = SCHEMES[row.scheme]
        public = self.gw._public(row)
        holders = [i for i in nodes if str(i) in row.package["verifying_shares"]]
        t_key = int(row.package["threshold"])
        snaps = {t.request_id: s for t, s in zip(tracked, snapshots, strict=True)}
        spent: set[int] = set()  # failed signers, and the others of their attempts
        pending = list(tracked)
        for _ in range(MAX_ATTEMPTS):
            candidates = [i for i in holders if i not in spent]
            signers = await self.gw.nodes.choose_signers(candidates, t_key)
            if len(signers) < t_key:
                break
            pending, used = await self._attempt(scheme, row, public, signers, pending, snaps)
            if not pending:
                return
            spent.update(used)
        for t in pending:
            failed = "; ".join(f"node {s}: {v['reason']}" for s, v in sorted(t.refusals.items()))
            t.status = "reserved"
            t.error = f"fewer than {t_key} usable reserved signers left" + (
                f" ({failed})" if failed else ""
            )

    async def _attempt(
        self,
        scheme: Scheme,
        row: KeyRow,
        public: Any,
        signers: list[int],
        tracked: list[Tracked],
        snaps: dict[str, list[dict[str, Any]]],
    ) -> tuple[list[Tracked], list[int]]:
        """One signing session of `tracked` on `signers`: the requests to retry, and the nodes
        not to ask again for them (the failed one, or every signer once shares were asked)."""
        key_id = row.key_id
        try:
            comms = {
                s: await self.gw.nodes.take_commitments(s, scheme.pool, len(tracked))
                for s in signers
            }
        except (NodeUnavailable, NodeRefused) as exc:
            self._failed(exc.node_id, exc, tracked)
            return tracked, [exc.node_id]
        messages = [request_message(t.request) for t in tracked]
        roots = [request_merkle_root(t.request) for t in tracked]
        items = []
        for k, t in enumerate(tracked):
            blob = governance_blob(t, snaps[t.request_id])
            items.append(
                pb.SignItem(
                    request_id=t.request_id,
                    key_id=key_id,
                    message=messages[k],
                    path=""
                    if t.request.intent.derivation_path == "m"
                    else t.request.intent.derivation_path,
                    commitments=[
                        pb.SignerCommitment(
                            signer=s,
                            nonce_id=comms[s][k].nonce_id,
                            hiding=comms[s][k].hiding,
                            binding=comms[s][k].binding,
                        )
                        for s in signers
                    ],
                    governance=blob.encode(),
                    taproot=t.request.intent.taproot,
                    merkle_root=roots[k] or b"",
                )
            )
        request = pb.SignBatchRequest(items=items)
        replies = await asyncio.gather(
            *(self.gw.nodes.transport(s).sign_batch(request, GOVERNANCE_TIMEOUT) for s in signers),
            return_exceptions=True,
        )
        shares: dict[int, dict[str, pb.SignResult]] = {}
        retry: list[Tracked] = []
        for s, rep in zip(signers, replies, strict=True):
            if isinstance(rep, BaseException):
                self._failed(s, rep, tracked)
            else:
                self.gw.nodes.mark_ok(s)
                shares[s] = {r.request_id: r for r in rep.results}
        released: list[tuple[str, dict[str, Any]]] = []
        for k, t in enumerate(tracked):
            t.signers = signers
            got: dict[int, bytes] = {}
            policy = False
            for s in signers:
                r = shares.get(s, {}).get(t.request_id)
                if r is None:
                    continue
                if not r.error:
                    got[s] = r.share
                elif POLICY_RE.match(r.error):
                    t.refusals[s] = refusal(r.error)
                    policy = True
                else:  # a fault of that node (its nonce store...): retried elsewhere
                    t.refusals[s] = {"rule_id": "node", "reason": r.error[:300]}
            if policy:
                t.status = "refused-by-policy"
                t.error = "; ".join(
                    f"node {s}: [{v['rule_id']}] {v['reason']}"
                    for s, v in sorted(t.refusals.items())
                    if s in signers
                )
                continue
            if not got and all(s in shares and t.request_id in shares[s] for s in signers):
                # Every signer answered with a fault for this request: the request, not a node.
                t.status = "failed"
                t.error = "; ".join(f"node {s}: {t.refusals[s]['reason']}" for s in signers)
                continue
            if len(got) < len(signers):
                retry.append(t)
                continue
            cm = {
                s: SignerCommitment(comms[s][k].nonce_id, comms[s][k].hiding, comms[s][k].binding)
                for s in signers
            }
            taproot = t.request.intent.taproot
            sreq = SchemeRequest(
                t.request_id, key_id, messages[k], items[k].path, taproot, roots[k], cm
            )
            try:
                sig = as_frost(scheme).aggregate(public, row.meta, sreq, got)
            except InvalidSignatureShare as exc:
                for c in exc.culprits:
                    t.refusals[c] = {"rule_id": "node", "reason": "invalid signature share"}
                    self.gw.nodes.quarantine(c, f"invalid signature share for {t.request_id}")
                retry.append(t)
                continue
            except CryptoError as exc:
                t.status, t.error = "failed", f"aggregation failed: {exc}"
                continue
            tweak = scheme.tweak(public, row.meta, items[k].path)
            t.signature, t.status, t.error = sig.hex(), "signed", ""
            root = scheme.merkle_root(taproot, roots[k])
            t.public_key = scheme.public_key(public, tweak, root).hex()
            released.append(
                (
                    KIND_SIGNATURE_RELEASED,
                    {"request_id": t.request_id, "digest": t.digest},
                )
            )
        if self.audit is not None and released:
            self.audit.append_many(released)
        return retry, signers

    def _failed(self, node: int, exc: BaseException, tracked: list[Tracked]) -> None:
        """A signer failed for the whole batch: name it in every request; a node that did not
        answer is marked down (and slow on a timeout) so that later batches avoid it."""
        if isinstance(exc, NodeRefused):
            reason = f"refused: {exc.reason}"
        elif isinstance(exc, NodeUnavailable):
            self.gw.nodes.mark_down(node, str(exc))
            reason = f"unavailable: {exc}"
        else:
            log.error("node %d: unexpected %r", node, exc)
            reason = f"error: {type(exc).__name__}"
        log.warning("governed signing: node %d failed, retrying elsewhere: %s", node, reason)
        for t in tracked:
            t.refusals[node] = {"rule_id": "node", "reason": reason[:300]}
