"""Step 3 of governed signing for FROST keys: `SignBatch` with the governance field to t signers
among the nodes holding the reservation, aggregation (culprits quarantined), retries elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from tholos.audit import KIND_SIGNATURE_RELEASED, AuditLog
from tholos.chains.base import ChainError
from tholos.crypto.errors import CryptoError, InvalidSignatureShare
from tholos.gateway import chain_targets
from tholos.gateway.errors import GatewayError
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
        units = [u for t in tracked for u in _units(row, t)]
        try:
            comms = {
                s: await self.gw.nodes.take_commitments(s, scheme.pool, len(units)) for s in signers
            }
        except (NodeUnavailable, NodeRefused) as exc:
            self._failed(exc.node_id, exc, tracked)
            return tracked, [exc.node_id]
        items = []
        blobs: dict[str, bytes] = {}
        for k, u in enumerate(units):
            t = u.tracked
            if t.request_id not in blobs:
                blobs[t.request_id] = governance_blob(t, snaps[t.request_id]).encode()
            items.append(
                pb.SignItem(
                    request_id=u.item_id,
                    key_id=key_id,
                    message=u.message,
                    path="" if u.path == "m" else u.path,
                    epoch=int(row.meta.get("epoch", 0)),  # refreshed or reshared keys are > 0
                    commitments=[
                        pb.SignerCommitment(
                            signer=s,
                            nonce_id=comms[s][k].nonce_id,
                            hiding=comms[s][k].hiding,
                            binding=comms[s][k].binding,
                        )
                        for s in signers
                    ],
                    governance=blobs[t.request_id],
                    taproot=u.taproot,
                    merkle_root=u.root or b"",
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
        by_request: dict[str, list[int]] = {}
        for k, u in enumerate(units):
            by_request.setdefault(u.tracked.request_id, []).append(k)
        for t in tracked:
            t.signers = signers
            mine = by_request[t.request_id]
            got: dict[int, dict[int, bytes]] = {k: {} for k in mine}
            policy = False
            for k in mine:
                for s in signers:
                    r = shares.get(s, {}).get(units[k].item_id)
                    if r is None:
                        continue
                    if not r.error:
                        got[k][s] = r.share
                    elif POLICY_RE.match(r.error):
                        if s not in t.refusals or t.refusals[s]["rule_id"] == "node":
                            t.refusals[s] = refusal(r.error)
                        policy = True
                    elif s not in t.refusals:  # a fault of that node: retried elsewhere
                        t.refusals[s] = {"rule_id": "node", "reason": r.error[:300]}
            if policy:
                t.status = "refused-by-policy"
                t.error = "; ".join(
                    f"node {s}: [{v['rule_id']}] {v['reason']}"
                    for s, v in sorted(t.refusals.items())
                    if s in signers
                )
                continue
            answered = all(
                s in shares and units[k].item_id in shares[s] for s in signers for k in mine
            )
            if not any(got[k] for k in mine) and answered:
                # Every signer answered with a fault for this request: the request, not a node.
                t.status = "failed"
                t.error = "; ".join(f"node {s}: {t.refusals[s]['reason']}" for s in signers)
                continue
            if any(len(got[k]) < len(signers) for k in mine):
                retry.append(t)
                continue
            sigs: list[bytes] = []
            for k in mine:
                sig = self._aggregate(scheme, row, public, signers, comms, k, items[k], got[k], t)
                if sig is None:
                    break
                sigs.append(sig)
            if len(sigs) < len(mine):
                if t.status != "failed":
                    retry.append(t)
                continue
            if t.request.intent.transaction is None:
                u = units[mine[0]]
                tweak = scheme.tweak(public, row.meta, items[mine[0]].path)
                t.signature, t.status, t.error = sigs[0].hex(), "signed", ""
                root = scheme.merkle_root(u.taproot, u.root)
                t.public_key = scheme.public_key(public, tweak, root).hex()
            else:
                try:
                    wallet = chain_targets.wallet_of(row, t.request)
                    t.transaction = chain_targets.finalize(wallet, t.request, sigs)
                except (GatewayError, ChainError) as exc:
                    t.status, t.error = "failed", f"finalize: {exc}"
                    continue
                t.status, t.error = "signed", ""
            released.append(
                (
                    KIND_SIGNATURE_RELEASED,
                    {"request_id": t.request_id, "digest": t.digest},
                )
            )
        if self.audit is not None and released:
            self.audit.append_many(released)
        return retry, signers

    def _aggregate(
        self,
        scheme: Scheme,
        row: KeyRow,
        public: Any,
        signers: list[int],
        comms: dict[int, list[Any]],
        k: int,
        item: pb.SignItem,
        got: dict[int, bytes],
        t: Tracked,
    ) -> bytes | None:
        """The signature of sign item `k` (verified under its key), or None: culprits are
        quarantined (the request retried elsewhere), a failure marks the request failed."""
        cm = {
            s: SignerCommitment(comms[s][k].nonce_id, comms[s][k].hiding, comms[s][k].binding)
            for s in signers
        }
        sreq = SchemeRequest(
            item.request_id,
            row.key_id,
            item.message,
            item.path,
            item.taproot,
            item.merkle_root or None,
            cm,
        )
        try:
            sig: bytes = as_frost(scheme).aggregate(public, row.meta, sreq, got)
        except InvalidSignatureShare as exc:
            for c in exc.culprits:
                t.refusals[c] = {"rule_id": "node", "reason": "invalid signature share"}
                self.gw.nodes.quarantine(c, f"invalid signature share for {t.request_id}")
            return None
        except CryptoError as exc:
            t.status, t.error = "failed", f"aggregation failed: {exc}"
            return None
        return sig

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


@dataclass(frozen=True)
class _Unit:
    """One signature of a request: its sign item id ("<request id>#<k>" for target k of a chain
    transaction, the request id for a raw request), message, path and taproot tweak."""

    tracked: Tracked
    item_id: str
    message: bytes
    path: str
    taproot: bool
    root: bytes | None


def _units(row: KeyRow, t: Tracked) -> list[_Unit]:
    """The signatures a request needs, as the gateway derives them (every node derives its own)."""
    intent = t.request.intent
    if intent.transaction is None:
        root = request_merkle_root(t.request)
        message = request_message(t.request)
        return [_Unit(t, t.request_id, message, intent.derivation_path, intent.taproot, root)]
    _, parsed = chain_targets.parse(row, t.request)
    return [
        _Unit(t, f"{t.request_id}#{k}", g.message, g.path, g.taproot, None)
        for k, g in enumerate(parsed.targets)
    ]
