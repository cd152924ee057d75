"""The gateway's registry of schemes (kind -> `RoundScheme`, gateway/rounds.py) and `RoundSigning`,
which runs every scheme's jobs, plain or governed: per scheme a `Batcher`, then for each batch the
signers (the scheme's `signers_needed`), one round trip (the scheme's `exchange`), the scheme's
`combine`, and retries on other signers when a node fails, refuses or sends a bad contribution
(quarantined).

Adding a scheme means adding its module (gateway/<scheme>.py) and listing it in `REGISTRY`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from tholos.crypto.errors import CryptoError, InvalidSignatureShare
from tholos.gateway.batcher import Batcher
from tholos.gateway.bls import BlsRounds
from tholos.gateway.database import StoreUnavailable
from tholos.gateway.dise import DiseRounds
from tholos.gateway.ecdsa import EcdsaRounds
from tholos.gateway.frost import FrostRounds
from tholos.gateway.key_lifecycle import check_usable
from tholos.gateway.repair import epoch
from tholos.gateway.rounds import GOVERNANCE_TIMEOUT, RoundScheme, SchemeJob
from tholos.gateway.signing import holders_with_share, job_record
from tholos.gateway.transport import NodeRefused, NodeUnavailable
from tholos.schemes import SCHEMES

log = logging.getLogger("tholos.gateway")
MAX_ATTEMPTS = 6
REGISTRY: dict[str, type[RoundScheme]] = {
    s.kind: s for s in (FrostRounds, EcdsaRounds, BlsRounds, DiseRounds)
}
"""Every scheme's signing at the gateway, by `Scheme.kind`."""


def is_round_signed(scheme: str) -> bool:
    """Whether keys of this scheme are signed in rounds without pre-shared nonce commitments
    (ECDSA, BLS, DiSE: their REST routes are in scheme_routes.py), unlike FROST."""
    return not REGISTRY[SCHEMES[scheme].kind].precommitted


class RoundSigning:
    """One gateway's round-signed schemes and their batchers."""

    def __init__(self, gw: Any) -> None:
        self.gw = gw
        self.nodes = gw.nodes
        self.schemes: dict[str, RoundScheme] = {k: cls(gw) for k, cls in REGISTRY.items()}
        self.batchers: dict[str, Batcher[SchemeJob]] = {
            k: Batcher(self._run, max_batch=512, max_inflight=3, **s.linger)
            for k, s in self.schemes.items()
        }

    async def close(self) -> None:
        for s in self.schemes.values():
            await s.close()
        for b in self.batchers.values():
            await b.stop()

    # -- jobs --------------------------------------------------------------------------------------
    def job(
        self,
        key_id: str,
        message: bytes,
        path: str = "",
        eval_request: dict[str, Any] | None = None,
        taproot: bool = False,
        merkle_root: bytes | None = None,
    ) -> SchemeJob:
        """A checked job for one key (GatewayError 409 for an operation the
        key's scheme has not, 422 for input it cannot take)."""
        from tholos.gateway.errors import GatewayError

        row = self.gw.key(key_id)
        check_usable(row)
        sch = SCHEMES[row.scheme]
        handler = self.schemes.get(sch.kind)
        if handler is None:
            raise GatewayError(409, "unsupported", f"{row.scheme} keys are not handled here")
        job = SchemeJob(sch.kind, row, self.gw._public(row), message, path)
        job.taproot, job.merkle_root = taproot, merkle_root
        try:
            handler.prepare(job, sch, eval_request)
        except (CryptoError, ValueError, KeyError) as exc:
            raise GatewayError(422, "bad_request", f"{type(exc).__name__}: {exc}") from None
        return job

    async def submit(self, jobs: list[SchemeJob]) -> list[SchemeJob]:
        by: dict[str, list[SchemeJob]] = defaultdict(list)
        for j in jobs:
            by[j.kind].append(j)
        await asyncio.gather(*(self.batchers[k].submit(js) for k, js in by.items()))
        return jobs

    def public_key_for(self, job: SchemeJob) -> bytes:
        return self.schemes[job.kind].public_key(job)

    # -- attempts ----------------------------------------------------------------------------------
    async def _run(self, jobs: list[SchemeJob]) -> None:
        pending = list(jobs)
        for _attempt in range(MAX_ATTEMPTS):
            if not pending:
                break
            groups: dict[tuple[str, tuple[int, ...], int], list[SchemeJob]] = defaultdict(list)
            for j in pending:
                self.nodes.note_broken(j.excluded, j.key_id)
                stale = self.schemes[j.kind].left_out(j)
                holders = holders_with_share(j.public.identifiers, j.excluded, [*stale, *j.avoid])
                groups[(j.kind, holders, j.public.threshold)].append(j)
            results = await asyncio.gather(
                *(self._attempt(k, list(h), t, js) for (k, h, t), js in groups.items())
            )
            pending = [j for r in results for j in r]
        for j in pending:
            if not j.error:
                j.error, j.status = "did not complete after retries", 503
        try:
            self.gw.store.record_requests(
                job_record(j, self.schemes[j.kind].protocol) for j in jobs
            )
        except StoreUnavailable as exc:  # the signatures exist: answer them, do not fail
            log.error("%d requests answered but not recorded: %s", len(jobs), exc)
        for j in jobs:
            if j.excluded:
                log.warning("request %s: excluded nodes %s", j.request_id, j.excluded)

    async def _attempt(
        self, kind: str, holders: list[int], t: int, jobs: list[SchemeJob]
    ) -> list[SchemeJob]:
        scheme = self.schemes[kind]
        need = SCHEMES[jobs[0].row.scheme].signers_needed(t)
        signers = await self.nodes.choose_signers(holders, need)
        if len(signers) < need:
            for j in jobs:
                j.error = f"only {len(signers)} usable nodes hold this key, {need} are needed"
                j.status = 503
            return []
        try:
            fields = await scheme.items(jobs, signers)
        except (NodeUnavailable, NodeRefused) as exc:
            down = isinstance(exc, NodeUnavailable)
            if down:
                self.nodes.mark_down(exc.node_id, str(exc))
            why = "timed out" if "DEADLINE_EXCEEDED" in str(exc) else "unreachable"
            for j in jobs:
                j.excluded.setdefault(exc.node_id, why if down else "refused")
            return jobs
        items: list[dict[str, Any]] = []
        active: list[tuple[SchemeJob, Any]] = []
        for j, f in zip(jobs, fields, strict=True):
            j.signers = signers
            if f is None:
                continue
            item: dict[str, Any] = {
                "request_id": j.request_id,
                "key_id": j.key_id,
                "epoch": epoch(j.row),  # a node that missed a refresh refuses, not lies
                **f[0],
            }
            if j.governance:
                item["governance"] = j.governance
            items.append(item)
            active.append((j, f[1]))
        if not items:
            return []
        governed = any(j.governance for j, _ in active)
        timeout = GOVERNANCE_TIMEOUT if governed else self.gw.rpc_timeout
        answers, failed = await scheme.exchange(signers, items, timeout)
        if failed:
            for s, why in failed.items():
                if why.startswith("refused"):
                    log.warning("node %d %s (%s batch)", s, why, kind)
            for j, _ in active:
                for s, why in failed.items():
                    j.excluded.setdefault(s, why)
                self._spent(j, signers)
            if (
                scheme.refusal_is_final
                and len(failed) == len(signers)
                and any(v.startswith("refused") for v in failed.values())
            ):
                for j, _ in active:
                    j.error = "; ".join(f"node {s} {w}" for s, w in failed.items())
                    j.status = 400
                return []
            return [j for j, _ in active]
        retry: list[SchemeJob] = []
        for j, pre in active:
            got: dict[int, dict[str, Any]] = {}
            errors: dict[int, str] = {}
            for s in signers:
                r = answers[s].get(j.request_id)
                if not isinstance(r, dict) or r.get("error"):
                    errors[s] = str(r.get("error")) if isinstance(r, dict) else "missing result"
                else:
                    got[s] = r
            if errors:
                if j.governance and self._refused(j, pre, errors, len(signers)):
                    continue
                if len(errors) == len(signers) and scheme.bad_request(errors):
                    j.error, j.status = next(iter(errors.values())), 400  # a bad request
                    if j.governance:  # each signer's refusal is named in the request
                        for s, e in errors.items():
                            j.excluded.setdefault(s, f"refused: {e}")
                    continue
                for s, e in errors.items():
                    j.excluded.setdefault(s, f"refused: {e}")
                self._spent(j, signers)
                retry.append(j)
                continue
            try:
                culprits = scheme.combine(j, pre, got)
            except InvalidSignatureShare as exc:
                culprits = list(exc.culprits)
                self._spent(j, signers)
                retry.append(j)
            except (CryptoError, KeyError, ValueError, TypeError) as exc:
                j.error, j.status = f"combination failed: {type(exc).__name__}: {exc}", 502
                continue
            for c in culprits:
                what = scheme.culprit
                j.excluded[c] = what
                self.nodes.quarantine(c, f"{what} for request {j.request_id}")
        return retry

    @staticmethod
    def _spent(j: SchemeJob, signers: list[int]) -> None:
        """A governed request is marked signed in the journal of every node that accepted it, so
        a retry goes to other nodes only (these would refuse it as a replay)."""
        if j.governance:
            j.avoid = (*j.avoid, *signers)

    def _refused(self, j: SchemeJob, pre: Any, errors: dict[int, str], n: int) -> bool:
        """A governed request refused by policy on a signer is final (not retried elsewhere). If
        all `n` signers refused, none used the presignature: it goes back to the pool."""
        policy = {s: e for s, e in errors.items() if e.startswith("PolicyRefused[")}
        if not policy:
            return False
        j.excluded.update(policy)
        j.error = "; ".join(f"node {s}: {e}" for s, e in sorted(policy.items()))
        j.status = 403
        if len(policy) == n:
            self.schemes[j.kind].give_back(j, pre)
        return True


def rounds_for(gw: Any) -> RoundSigning:
    """The gateway's RoundSigning, created on first use."""
    found = getattr(gw, "_round_signing", None)
    if found is None:
        found = RoundSigning(gw)
        gw._round_signing = found
    return found


def presignatures(gw: Any) -> EcdsaRounds:
    """The gateway's ECDSA presignature pools."""
    ecdsa = rounds_for(gw).schemes["ecdsa"]
    assert isinstance(ecdsa, EcdsaRounds)
    return ecdsa
