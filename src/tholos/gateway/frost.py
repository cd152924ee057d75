"""FROST signing at the gateway (bip340, ed25519, secp256k1): pre-shared nonces, one round trip.

Every node pre-shares batches of nonce commitments (`Commitments` RPC, pools in gateway/nodes.py),
so a signature needs one round trip: `items` takes one commitment per signer and job from the
pools (no RPC while they last), `exchange` sends every signer one `SignBatch` with all the batch's
items, and `combine` aggregates (crypto/frost: the final signature is checked first, each share
only if that fails, naming the culprits). A retry is a fresh FROST session on other signers with
fresh nonces; a node never signs twice with a nonce (node/frost.py).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from tholos.gateway.rounds import Answers, RoundScheme, SchemeJob
from tholos.gateway.transport import NodeRefused, NodeUnavailable
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SCHEMES, Scheme, SignerCommitment, SigningRequest, as_frost

#: Refusals that are about a node's state (nonces, shares), not the request.
NODE_STATE = ("nonce", "stale share", "broken share")


class FrostRounds(RoundScheme):
    """FROST over `SignBatch`: t signers, one pre-shared nonce commitment each per job."""

    kind = "frost"
    protocol = "sign"
    precommitted = True
    refusal_is_final = True

    def prepare(self, job: SchemeJob, scheme: Scheme, eval_request: dict[str, Any] | None) -> None:
        from tholos.gateway.errors import GatewayError

        if eval_request is not None:
            raise GatewayError(400, "unsupported", f"{job.row.scheme} keys cannot evaluate")
        scheme.merkle_root(job.taproot, job.merkle_root)  # CryptoError: 400
        job.tweak = scheme.tweak(job.public, job.row.meta, job.path)

    async def items(
        self, jobs: list[SchemeJob], signers: list[int]
    ) -> list[tuple[dict[str, Any], Any] | None]:
        """Per job, its commitments (one per signer, from the job's nonce pool)."""
        by_pool: dict[str, list[int]] = defaultdict(list)
        for idx, j in enumerate(jobs):
            by_pool[SCHEMES[j.row.scheme].pool].append(idx)

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
        comms: dict[int, list[pb.Commitment]] = dict(zip(signers, lists, strict=True))  # type: ignore[arg-type]
        out: list[tuple[dict[str, Any], Any] | None] = []
        for idx, j in enumerate(jobs):
            mine = {s: comms[s][idx] for s in signers}
            fields = {
                "message": j.message,
                "path": j.path,
                "taproot": j.taproot,
                "merkle_root": j.merkle_root or b"",
                "commitments": [
                    pb.SignerCommitment(
                        signer=s, nonce_id=c.nonce_id, hiding=c.hiding, binding=c.binding
                    )
                    for s, c in sorted(mine.items())
                ],
            }
            state = {s: SignerCommitment(c.nonce_id, c.hiding, c.binding) for s, c in mine.items()}
            out.append((fields, state))
        return out

    async def exchange(
        self, signers: list[int], items: list[dict[str, Any]], timeout: float
    ) -> tuple[Answers, dict[int, str]]:
        """One `SignBatch` to every signer; each result is {"share": bytes} or {"error": str}."""
        request = pb.SignBatchRequest(items=[_sign_item(it) for it in items])
        replies = await asyncio.gather(
            *(self.nodes.transport(s).sign_batch(request, timeout) for s in signers),
            return_exceptions=True,
        )
        replied, failed = self.nodes.sort_replies(signers, replies)
        answers: Answers = {
            s: {
                r.request_id: ({"error": r.error} if r.error else {"share": r.share})
                for r in rep.results
            }
            for s, rep in replied.items()
        }
        return answers, failed

    def bad_request(self, errors: dict[int, str]) -> bool:
        return all(("InvalidInput" in e or "VaultError" in e) for e in errors.values()) and not any(
            w in e for e in errors.values() for w in NODE_STATE
        )

    def combine(self, job: SchemeJob, state: Any, got: dict[int, dict[str, Any]]) -> list[int]:
        scheme = SCHEMES[job.row.scheme]
        request = SigningRequest(
            job.request_id,
            job.key_id,
            job.message,
            job.path,
            job.taproot,
            job.merkle_root,
            state,
        )
        shares = {s: r["share"] for s, r in got.items()}
        job.signature = as_frost(scheme).aggregate(job.public, job.row.meta, request, shares)
        job.error = ""
        return []

    def public_key(self, job: SchemeJob) -> bytes:
        scheme = SCHEMES[job.row.scheme]
        return scheme.public_key(
            job.public, job.tweak, scheme.merkle_root(job.taproot, job.merkle_root)
        )


def _sign_item(it: dict[str, Any]) -> pb.SignItem:
    """The `SignItem` of one batch item (fields set by `RoundSigning._attempt` and `items`)."""
    blob = it.get("governance", "")
    return pb.SignItem(
        request_id=it["request_id"],
        key_id=it["key_id"],
        message=it["message"],
        path=it["path"],
        taproot=it["taproot"],
        merkle_root=it["merkle_root"],
        epoch=it["epoch"],
        commitments=it["commitments"],
        governance=blob.encode() if blob else b"",
    )
