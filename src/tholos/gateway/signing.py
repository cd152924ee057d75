"""Signing coordinator: one online round per attempt, many signatures per round trip, ROAST-style
retries.

An attempt picks `t` usable signers for a group of requests, gives each request one fresh nonce
commitment per signer, sends every signer one `SignBatch`, and aggregates. `aggregate` verifies
every share (cheaply: the final signature first, each share only if that fails) and names bad
signers; those are quarantined and named in the response, and the requests are retried with
other signers. A signer that times out or is unreachable is marked down and the requests retried
as well. Requests fail only when fewer than `t` usable nodes hold the key.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tholos.crypto.errors import CryptoError, InvalidSignatureShare
from tholos.crypto.keys import PublicKeyPackage
from tholos.gateway.nodes import NodeSet
from tholos.gateway.transport import NodeRefused, NodeUnavailable
from tholos.rpc import node_pb2 as pb
from tholos.schemes import Scheme, SignerCommitment, SigningRequest, as_frost

log = logging.getLogger("tholos.gateway")
MAX_ATTEMPTS = 6


@dataclass
class SignJob:
    key_id: str
    scheme: Scheme
    public: PublicKeyPackage[Any]
    meta: dict[str, Any]
    message: bytes
    path: str = ""
    taproot: bool = False
    merkle_root: bytes | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    excluded: dict[int, str] = field(default_factory=dict)
    signers: list[int] = field(default_factory=list)
    signature: bytes | None = None
    error: str = ""
    status: int = 200

    @property
    def done(self) -> bool:
        return self.signature is not None

    def request(self, commitments: dict[int, SignerCommitment]) -> SigningRequest:
        return SigningRequest(
            self.request_id,
            self.key_id,
            self.message,
            self.path,
            self.taproot,
            self.merkle_root,
            commitments,
        )


#: Refusals that mean "this node has no usable share of the key": left out, never blamed.
NO_SHARE = ("stale share", "unknown key", "broken share")


def holders_with_share(
    identifiers: Iterable[int], excluded: Mapping[int, str], waiting: Iterable[int] = ()
) -> tuple[int, ...]:
    """Holders of a key minus those without its current share: nodes that refused as stale or
    without the key (they would refuse again on a retry) and `waiting` (nodes known not to have
    committed its last refresh, see gateway/repair.py)."""
    waiting = set(waiting)
    return tuple(
        i
        for i in identifiers
        if i not in waiting and not any(w in excluded.get(i, "") for w in NO_SHARE)
    )


def job_record(job: Any, kind: str) -> tuple[str, str, str, str, dict[str, Any]]:
    """The gateway store row (`record_requests`) of a finished FROST, ECDSA, BLS or DiSE job."""
    return (
        job.request_id,
        kind,
        job.key_id,
        "done" if job.done else "failed",
        {
            "signers": job.signers,
            "excluded": {str(k): v for k, v in job.excluded.items()},
            "error": job.error,
            "signature": job.signature.hex() if job.signature else None,
        },
    )


def job_result(job: Any, public_key_for: Callable[[Any], bytes]) -> dict[str, Any]:
    """The API answer for a finished FROST, ECDSA, BLS or DiSE job (signature or error)."""
    out: dict[str, Any] = {
        "request_id": job.request_id,
        "key_id": job.key_id,
        "signers": job.signers,
        "excluded": {str(k): v for k, v in sorted(job.excluded.items())},
    }
    if job.signature is not None:
        out["signature"] = job.signature.hex()
        out["public_key"] = public_key_for(job).hex()
    else:
        out["error"] = {"code": "sign_failed", "message": job.error, "status": job.status}
    return out


class SigningCoordinator:
    def __init__(self, nodes: NodeSet, rpc_timeout: float = 5.0) -> None:
        self.nodes = nodes
        self.rpc_timeout = rpc_timeout

    async def run(self, jobs: list[SignJob]) -> list[SignJob]:
        pending = list(jobs)
        for _attempt in range(MAX_ATTEMPTS):
            if not pending:
                break
            groups: dict[tuple[tuple[int, ...], int], list[SignJob]] = defaultdict(list)
            for j in pending:
                self.nodes.note_broken(j.excluded, j.key_id)
                holders = holders_with_share(j.public.identifiers, j.excluded)
                groups[(holders, j.public.threshold)].append(j)
            results = await asyncio.gather(
                *(self._attempt(list(holders), t, js) for (holders, t), js in groups.items())
            )
            pending = [j for r in results for j in r]
        for j in pending:
            if not j.error:
                j.error, j.status = "signing did not complete after retries", 503
        return jobs

    async def _attempt(self, holders: list[int], t: int, jobs: list[SignJob]) -> list[SignJob]:
        """One attempt for jobs sharing holders and threshold; returns the jobs to retry."""
        signers = await self.nodes.choose_signers(holders, t)
        if len(signers) < t:
            for j in jobs:
                j.error = f"only {len(signers)} usable nodes hold this key, threshold is {t}"
                j.status = 503
            return []
        try:
            comms = await self._commitments(signers, jobs)
        except (NodeUnavailable, NodeRefused) as exc:
            node = exc.node_id
            if isinstance(exc, NodeUnavailable):
                self.nodes.mark_down(node, str(exc))
            why = "timed out" if "DEADLINE_EXCEEDED" in str(exc) else "unreachable"
            for j in jobs:
                j.excluded.setdefault(node, why if isinstance(exc, NodeUnavailable) else "refused")
            return jobs
        items = []
        for idx, j in enumerate(jobs):
            cm = {
                s: SignerCommitment(c[idx].nonce_id, c[idx].hiding, c[idx].binding)
                for s, c in comms.items()
            }
            j.signers = signers
            items.append(
                pb.SignItem(
                    request_id=j.request_id,
                    key_id=j.key_id,
                    message=j.message,
                    path=j.path,
                    taproot=j.taproot,
                    merkle_root=j.merkle_root or b"",
                    epoch=int(j.meta.get("epoch", 0)),
                    commitments=[
                        pb.SignerCommitment(
                            signer=s, nonce_id=c.nonce_id, hiding=c.hiding, binding=c.binding
                        )
                        for s, c in sorted(cm.items())
                    ],
                )
            )
        request = pb.SignBatchRequest(items=items)
        replies = await asyncio.gather(
            *(self.nodes.transport(s).sign_batch(request, self.rpc_timeout) for s in signers),
            return_exceptions=True,
        )
        answers, failed = self.nodes.sort_replies(signers, replies)
        shares = {s: {r.request_id: r for r in rep.results} for s, rep in answers.items()}
        for s, why in failed.items():
            if why.startswith("refused"):
                log.warning("node %d %s (sign batch)", s, why)
        if failed:
            for j in jobs:
                for s, why in failed.items():
                    j.excluded.setdefault(s, why)
            if any(v.startswith("refused") for v in failed.values()) and len(failed) == len(
                signers
            ):
                for j in jobs:
                    j.error, j.status = "; ".join(f"node {s} {w}" for s, w in failed.items()), 400
                return []
            return jobs
        retry: list[SignJob] = []
        for idx, j in enumerate(jobs):
            got: dict[int, bytes] = {}
            errors: dict[int, str] = {}
            for s in signers:
                r = shares[s].get(j.request_id)
                if r is None or r.error:
                    errors[s] = r.error if r is not None else "missing result"
                else:
                    got[s] = r.share
            if errors:
                if (
                    len(errors) == len(signers)
                    and all(("InvalidInput" in e or "VaultError" in e) for e in errors.values())
                    and not any(
                        ("nonce" in e or "stale share" in e or "broken share" in e)
                        for e in errors.values()
                    )
                ):
                    # Every signer refuses the request itself: a bad request, not a bad node.
                    j.error, j.status = next(iter(errors.values())), 400
                    continue
                for s, e in errors.items():
                    j.excluded.setdefault(s, f"refused: {e}")
                retry.append(j)
                continue
            cm = {
                s: SignerCommitment(
                    comms[s][idx].nonce_id, comms[s][idx].hiding, comms[s][idx].binding
                )
                for s in signers
            }
            try:
                j.signature = as_frost(j.scheme).aggregate(j.public, j.meta, j.request(cm), got)
                j.error = ""
            except InvalidSignatureShare as exc:
                for c in exc.culprits:
                    j.excluded[c] = "invalid signature share"
                    self.nodes.quarantine(c, f"invalid signature share for request {j.request_id}")
                retry.append(j)
            except CryptoError as exc:
                j.error, j.status = f"aggregation failed: {exc}", 500
        return retry

    async def _commitments(
        self, signers: list[int], jobs: list[SignJob]
    ) -> dict[int, list[pb.Commitment]]:
        """Per signer, one commitment per job (of the job's suite), in job order."""
        by_pool: dict[str, list[int]] = defaultdict(list)
        for idx, j in enumerate(jobs):
            by_pool[j.scheme.pool].append(idx)

        async def for_signer(s: int) -> list[pb.Commitment]:
            out: list[pb.Commitment | None] = [None] * len(jobs)
            for pool, idxs in by_pool.items():
                got = await self.nodes.take_commitments(s, pool, len(idxs))
                for i, c in zip(idxs, got, strict=True):
                    out[i] = c
            return [c for c in out if c is not None]

        lists = await asyncio.gather(*(for_signer(s) for s in signers), return_exceptions=True)
        for s, res in zip(signers, lists, strict=True):
            if isinstance(res, BaseException):
                if isinstance(res, NodeUnavailable | NodeRefused):
                    raise res
                raise NodeUnavailable(s, repr(res))
        return {s: res for s, res in zip(signers, lists, strict=True)}  # type: ignore[misc]
