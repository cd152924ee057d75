"""Gateway side of threshold ECDSA (presignature pools, one-round signing), threshold BLS and DiSE.

- ECDSA: per key, a pool of presignature public parts (`PresignaturePublic`) in memory; the nodes
  hold the sealed secret parts. Pools are filled by batched `ecdsa-presign` protocol runs among all
  usable holders (>= 2t-1), driven by the same `ProtocolDriver` as the DKG (echo, E2E-encrypted
  private shares, every node's finish signed and compared). When a pool falls below `low_water`
  a background refill starts. Signing takes one presignature per request and sends one
  `ecdsa-sign` round to 2t-1 signers; the gateway interpolates s and verifies the final signature
  (libsecp256k1); only if that fails does it check each share (`combine_robust`) to name the
  culprits, who are quarantined, and the request is retried with another presignature and other
  signers. A gateway restart forgets its pools: the nodes' orphaned rows are never used.
- BLS: one `bls-sign` round to t signers; `combine_robust` checks every partial before a
  signature is released, in one batched pairing check with random 128-bit coefficients that also
  covers the combined signature; only if it fails is each partial checked alone, naming the
  culprits, who are quarantined and left out (the request retried with other signers if fewer
  than t valid partials remain).
- Governed ECDSA/BLS requests (gateway/governed_extra.py): each item carries the request's
  governance blob; a policy refusal is final (if every signer refused, the presignature goes back
  to the pool: none used it), and a retry goes only to nodes not asked yet (`_spent`).
- DiSE: one `dise-eval` round to t nodes; the t partials go back to the client as the nodes sent
  them (only their identifiers are checked), and the client checks every proof, combines them and
  runs AES-GCM itself (the gateway never sees plaintext nor derives w). On a bad proof the client
  asks again with `verify`: then every partial is parsed and its DLEQ proof checked here, a bad
  node is named and quarantined, and the request retried with others. Governed clusters: the
  client's signed authorization is relayed untouched to each node, which returns its partial
  sealed to the client (tholos.node.dise_governance); the gateway can neither read nor check it.
  On a bad partial the client asks again naming the node in `exclude`: that node is left out of
  this request only, never quarantined on the client's word.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tholos.crypto.bls import threshold as bls
from tholos.crypto.dise import EvalRequest, PartialEval, verify_partial
from tholos.crypto.dise import key_id as dise_key_id
from tholos.crypto.ecdsa.presign import (
    PresignaturePublic,
    key_fingerprint,
    min_participants,
)
from tholos.crypto.ecdsa.sign import SignatureShare, _online, combine_robust
from tholos.crypto.ecdsa.signature import EcdsaSignature, finish_signature
from tholos.crypto.errors import CryptoError, InvalidSignature, InvalidSignatureShare
from tholos.crypto.groups.secp256k1 import N
from tholos.crypto.hazmat.shamir import interpolate
from tholos.crypto.keys import PublicKeyPackage
from tholos.gateway.batcher import Batcher
from tholos.gateway.protocols import PHASES, ProtocolFailed
from tholos.gateway.repair import epoch, waiting
from tholos.gateway.signing import holders_with_share, job_record
from tholos.gateway.store import KeyRow
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SCHEMES

log = logging.getLogger("tholos.gateway")
PHASES["ecdsa-presign"] = ("round1", "round2", "finish")
MAX_ATTEMPTS = 6
MAX_SEALED_HEX = 4096  # a sealed DiSE partial is about 700 hex characters
KIND_PROTOCOL = {"ecdsa": "ecdsa-sign", "bls": "bls-sign", "dise": "dise-eval"}
# A BLS or DiSE item costs a node ~0.3 ms, less than the fixed cost of each RPC: while batches
# are running, wait up to 2 ms for 6 items instead of sending batches of 2-3 (measured at n=4,
# 16 in flight: node CPU per DiSE operation down by about a quarter on a loaded machine).
LINGER: dict[str, dict[str, Any]] = {k: {"linger": 0.002, "min_batch": 6} for k in ("bls", "dise")}


@dataclass
class ExtraJob:
    kind: str
    row: KeyRow
    public: PublicKeyPackage[Any]
    message: bytes  # ECDSA: 32-byte digest; BLS: message; DiSE: unused
    path: str = ""
    tweak: int = 0
    eval_request: EvalRequest | None = None
    verify: bool = True  # DiSE: check every partial's proof here (else the client does)
    authorization: dict[str, Any] | None = None  # DiSE, governed: relayed untouched
    avoid: tuple[int, ...] = ()  # DiSE: nodes the client excluded (not quarantined)
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


class ExtraGateway:
    def __init__(
        self, gw: Any, *, presign_batch: int = 100, low_water: int = 32, auto_refill: bool = True
    ) -> None:
        self.gw = gw
        self.nodes = gw.nodes
        self.presign_batch = presign_batch
        self.low_water = low_water
        self.auto_refill = auto_refill
        self.pools: dict[str, deque[PresignaturePublic]] = defaultdict(deque)
        self._presigning: dict[str, asyncio.Task[int]] = {}
        self.batchers: dict[str, Batcher[ExtraJob]] = {
            k: Batcher(self._run, max_batch=512, max_inflight=3, **LINGER.get(k, {}))
            for k in KIND_PROTOCOL
        }
        self.presigned_total = 0
        self._fingerprints: dict[str, tuple[PublicKeyPackage[Any], bytes]] = {}

    async def close(self) -> None:
        for t in list(self._presigning.values()):
            t.cancel()
        for b in self.batchers.values():
            await b.stop()

    # -- jobs --------------------------------------------------------------------------------------
    def job(
        self,
        key_id: str,
        message: bytes,
        path: str = "",
        eval_request: dict[str, Any] | None = None,
    ) -> ExtraJob:
        from tholos.gateway.service import GatewayError

        row = self.gw.key(key_id)
        sch = SCHEMES[row.scheme]
        kind = getattr(sch, "kind", "")
        if kind not in KIND_PROTOCOL:
            raise GatewayError(400, "unsupported", f"{row.scheme} keys are not handled here")
        public = self.gw._public(row)
        job = ExtraJob(kind, row, public, message, path)
        try:
            if kind == "ecdsa":
                if len(message) != 32:
                    raise GatewayError(
                        400, "bad_length", "ECDSA signs a 32-byte digest (--message HEX32)"
                    )
                job.tweak = sch.tweak(public, row.meta, path)
            elif path:
                raise GatewayError(400, "unsupported", f"{row.scheme} keys have no derivation")
            if kind == "dise":
                if eval_request is None:
                    raise GatewayError(
                        400, "bad_request", "dise keys encrypt/decrypt: use evaluate"
                    )
                job.verify = bool(eval_request.get("verify", False))
                job.authorization = eval_request.get("authorization")
                if job.authorization is not None and job.verify:
                    raise GatewayError(
                        400,
                        "bad_request",
                        "sealed partials cannot be checked here: the client checks them and "
                        "names a bad node in `exclude`",
                    )
                job.avoid = tuple(sorted({int(i) for i in eval_request.get("exclude") or ()}))
                for i in job.avoid:
                    job.excluded[i] = "excluded by the client"
                job.eval_request = EvalRequest(
                    dise_key_id(public),
                    str(eval_request["encryptor"]),
                    bytes.fromhex(str(eval_request["alpha"])),
                    "encrypt" if eval_request.get("purpose") == "encrypt" else "decrypt",
                )
            elif eval_request is not None:
                raise GatewayError(400, "unsupported", f"{row.scheme} keys cannot evaluate")
        except (CryptoError, ValueError, KeyError) as exc:
            raise GatewayError(400, "bad_request", f"{type(exc).__name__}: {exc}") from None
        return job

    async def submit(self, jobs: list[ExtraJob]) -> list[ExtraJob]:
        by: dict[str, list[ExtraJob]] = defaultdict(list)
        for j in jobs:
            by[j.kind].append(j)
        await asyncio.gather(*(self.batchers[k].submit(js) for k, js in by.items()))
        return jobs

    def public_key_for(self, job: ExtraJob) -> bytes:
        sch = SCHEMES[job.row.scheme]
        return sch.public_key(job.public, job.tweak)

    # -- ECDSA presignature pools --------------------------------------------------------------------
    def _fingerprint(self, key_id: str, public: PublicKeyPackage[Any]) -> bytes:
        cached = self._fingerprints.get(key_id)
        if cached is not None and cached[0] is public:
            return cached[1]
        fp = key_fingerprint(public)
        self._fingerprints[key_id] = (public, fp)
        return fp

    def pool_size(self, key_id: str, public: PublicKeyPackage[Any] | None = None) -> int:
        pool = self.pools.get(key_id)
        if not pool:
            return 0
        if public is not None:
            fp = self._fingerprint(key_id, public)
            while pool and pool[0].key_fingerprint != fp:
                pool.popleft()  # made for a previous key package (refreshed): useless
        return len(pool)

    async def presign(self, key_id: str, count: int) -> int:
        """Fill the pool of `key_id` with `count` more presignatures (batches of presign_batch);
        returns how many were added."""
        from tholos.gateway.service import GatewayError

        row = self.gw.key(key_id)
        if getattr(SCHEMES[row.scheme], "kind", "") != "ecdsa":
            raise GatewayError(400, "unsupported", "presignatures are for ecdsa keys")
        public = self.gw._public(row)
        added = 0
        while added < count:
            n = min(self.presign_batch, count - added)
            added += await self._presign_once(key_id, public, n, epoch(row), waiting(row))
        return added

    async def _presign_once(
        self,
        key_id: str,
        public: PublicKeyPackage[Any],
        count: int,
        key_epoch: int = 0,
        stale: Sequence[int] = (),
    ) -> int:
        """One presign batch among the usable holders of the current share (a node that has not
        committed the last refresh would make every participant's proofs fail)."""
        from tholos.gateway.service import GatewayError

        holders = sorted(set(public.identifiers) - set(stale))
        need = min_participants(public.threshold)
        for _attempt in range(3):
            participants = self.nodes.usable(holders)
            if len(participants) < len(holders):
                await asyncio.gather(
                    *(self.nodes.probe(i) for i in holders if i not in participants)
                )
                participants = self.nodes.usable(holders)
            if len(participants) < need:
                raise GatewayError(
                    503, "nodes_unavailable", f"presigning needs {need} usable holders (2t-1)"
                )
            try:
                res = await self.gw.driver.run(
                    "ecdsa-presign",
                    participants,
                    [{"key_id": key_id, "count": count, "epoch": key_epoch}],
                )
            except ProtocolFailed as exc:
                log.warning(
                    "presign batch for %s failed: %s (culprits %s)", key_id, exc, exc.culprits
                )
                for c in exc.culprits:
                    self.nodes.quarantine(c, f"misbehaved in ECDSA presigning: {exc}")
                if not exc.culprits and not exc.unavailable:
                    raise GatewayError(503, "presign_failed", str(exc)) from None
                continue
            publics = [PresignaturePublic.from_dict(d) for d in res.results[key_id]]
            fp = key_fingerprint(public)
            if any(p.key_fingerprint != fp for p in publics):
                raise GatewayError(500, "presign_failed", "presignatures for another key package")
            self.pools[key_id].extend(publics)
            self.presigned_total += len(publics)
            return len(publics)
        raise GatewayError(503, "presign_failed", "presigning did not complete after retries")

    def _maybe_refill(self, key_id: str) -> None:
        if not self.auto_refill or key_id in self._presigning:
            return
        if len(self.pools[key_id]) >= self.low_water:
            return

        async def refill() -> int:
            try:
                return await self.presign(key_id, self.presign_batch)
            except Exception as exc:
                log.warning("background presigning for %s failed: %s", key_id, exc)
                return 0
            finally:
                self._presigning.pop(key_id, None)

        self._presigning[key_id] = asyncio.create_task(refill())

    async def _take_presig(self, job: ExtraJob, signers: list[int]) -> PresignaturePublic | None:
        for _ in range(2):
            self.pool_size(job.key_id, job.public)
            pool = self.pools[job.key_id]
            for _i in range(len(pool)):
                pre = pool.popleft()
                if set(signers) <= set(pre.participants):
                    self._maybe_refill(job.key_id)
                    return pre
                pool.append(pre)  # made without one of these signers: keep for other sets
            task = self._presigning.get(job.key_id)
            if task is not None:
                await task
            else:
                try:
                    await self.presign(job.key_id, self.presign_batch)
                except Exception as exc:
                    job.error, job.status = f"no presignature available: {exc}", 503
                    return None
        return None

    # -- attempts ----------------------------------------------------------------------------------
    async def _run(self, jobs: list[ExtraJob]) -> None:
        pending = list(jobs)
        for _attempt in range(MAX_ATTEMPTS):
            if not pending:
                break
            groups: dict[tuple[str, tuple[int, ...], int], list[ExtraJob]] = defaultdict(list)
            for j in pending:
                # ECDSA presignatures come from a fixed participant set: a node known not to
                # hold the current share is left out up front. BLS/DiSE (like FROST) let it
                # refuse as stale (shown by `cluster status`) and retry with the others.
                stale = waiting(j.row) if j.kind == "ecdsa" else []
                holders = holders_with_share(j.public.identifiers, j.excluded, [*stale, *j.avoid])
                groups[(j.kind, holders, j.public.threshold)].append(j)
            results = await asyncio.gather(
                *(self._attempt(k, list(h), t, js) for (k, h, t), js in groups.items())
            )
            pending = [j for r in results for j in r]
        for j in pending:
            if not j.error:
                j.error, j.status = "did not complete after retries", 503
        self.gw.store.record_requests(job_record(j, KIND_PROTOCOL[j.kind]) for j in jobs)

    async def _attempt(
        self, kind: str, holders: list[int], t: int, jobs: list[ExtraJob]
    ) -> list[ExtraJob]:
        need = min_participants(t) if kind == "ecdsa" else t
        signers = await self.nodes.choose_signers(holders, need)
        if len(signers) < need:
            for j in jobs:
                j.error = f"only {len(signers)} usable nodes hold this key, {need} are needed"
                j.status = 503
            return []
        items: list[dict[str, Any]] = []
        active: list[tuple[ExtraJob, PresignaturePublic | None]] = []
        for j in jobs:
            j.signers = signers
            item: dict[str, Any] = {
                "request_id": j.request_id,
                "key_id": j.key_id,
                "epoch": epoch(j.row),  # a node that missed a refresh refuses, not lies
            }
            pre: PresignaturePublic | None = None
            if kind == "ecdsa":
                pre = await self._take_presig(j, signers)
                if pre is None:
                    if not j.error:
                        j.error, j.status = "no presignature available", 503
                    continue
                item.update(digest=j.message.hex(), path=j.path, presig=pre.session.hex())
            elif kind == "bls":
                item["message"] = j.message.hex()
            else:
                assert j.eval_request is not None
                item["request"] = j.eval_request.to_dict()
                if j.authorization is not None:
                    item["authorization"] = j.authorization
            if j.governance:
                item["governance"] = j.governance
            items.append(item)
            active.append((j, pre))
        if not items:
            return []
        payload = json.dumps({"batch": uuid.uuid4().hex, "items": items}).encode()
        phase = "eval" if kind == "dise" else "sign"
        req = pb.ProtocolRequest(protocol=KIND_PROTOCOL[kind], phase=phase, payload=payload)
        replies = await asyncio.gather(
            *(self.nodes.transport(s).protocol(req, self.gw.signing.rpc_timeout) for s in signers),
            return_exceptions=True,
        )
        replied, failed = self.nodes.sort_replies(
            signers,
            replies,
            lambda s, rep: "" if rep.envelope.sender == s else "answered for another node",
        )
        answers: dict[int, dict[str, Any]] = {
            s: json.loads(rep.envelope.payload).get("results", {}) for s, rep in replied.items()
        }
        if failed:
            for j, _ in active:
                for s, why in failed.items():
                    j.excluded.setdefault(s, why)
                self._spent(j, signers)
            return [j for j, _ in active]
        retry: list[ExtraJob] = []
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
                if len(errors) == len(signers) and not any(
                    "presignature" in e for e in errors.values()
                ):
                    j.error, j.status = next(iter(errors.values())), 400  # a bad request
                    continue
                for s, e in errors.items():
                    j.excluded.setdefault(s, f"refused: {e}")
                self._spent(j, signers)
                retry.append(j)
                continue
            try:
                culprits = self._combine(j, pre, got)
            except InvalidSignatureShare as exc:
                culprits = list(exc.culprits)
                self._spent(j, signers)
                retry.append(j)
            except (CryptoError, KeyError, ValueError, TypeError) as exc:
                j.error, j.status = f"combination failed: {type(exc).__name__}: {exc}", 502
                continue
            for c in culprits:
                what = "invalid partial evaluation" if kind == "dise" else "invalid signature share"
                j.excluded[c] = what
                self.nodes.quarantine(c, f"{what} for request {j.request_id}")
        return retry

    @staticmethod
    def _spent(j: ExtraJob, signers: list[int]) -> None:
        """A governed request is marked signed in the journal of every node that accepted it, so
        a retry goes to other nodes only (these would refuse it as a replay)."""
        if j.governance:
            j.avoid = (*j.avoid, *signers)

    def _refused(
        self, j: ExtraJob, pre: PresignaturePublic | None, errors: dict[int, str], n: int
    ) -> bool:
        """A governed request refused by policy on a signer is final (not retried elsewhere). If
        all `n` signers refused, none used the presignature: it goes back to the pool."""
        policy = {s: e for s, e in errors.items() if e.startswith("PolicyRefused[")}
        if not policy:
            return False
        j.excluded.update(policy)
        j.error = "; ".join(f"node {s}: {e}" for s, e in sorted(policy.items()))
        j.status = 403
        if pre is not None and len(policy) == n:
            self.pools[j.key_id].appendleft(pre)
        return True

    def _combine(
        self, j: ExtraJob, pre: PresignaturePublic | None, got: dict[int, dict[str, Any]]
    ) -> list[int]:
        """Combine into j; returns culprits that were left out (raises InvalidSignatureShare when
        too few valid contributions remain: the job is retried)."""
        if j.kind == "ecdsa":
            assert pre is not None
            shares = {i: int(r["s"], 16) % N for i, r in got.items()}
            o = _online(pre, j.message, j.tweak)
            try:  # fast path: interpolate and verify the final signature once
                sig = finish_signature(o.big_r, interpolate(shares, N), o.public_key, j.message)
                bad: list[int] = []
            except (InvalidSignature, CryptoError, ValueError):
                res = combine_robust(
                    pre,
                    j.message,
                    [SignatureShare(pre.session, i, s) for i, s in shares.items()],
                    tweak=j.tweak,
                )
                sig, bad = res.signature, list(res.excluded)
            self._set_ecdsa(j, sig)
            return bad
        if j.kind == "bls":
            partials = [bls.PartialSignature.from_dict(r["partial"]) for r in got.values()]
            res_b = bls.combine_robust(j.public, j.message, partials)
            j.signature = res_b.signature
            return list(res_b.excluded)
        assert j.eval_request is not None
        bad = []
        good = []
        for i, r in got.items():
            if j.authorization is not None:  # sealed to the client, who opens and checks it
                sealed = r.get("sealed")
                if isinstance(sealed, str) and 0 < len(sealed) <= MAX_SEALED_HEX:
                    good.append({"identifier": i, "sealed": sealed})
                elif "partial" in r:  # a development-mode node: not its fault, nothing relayed
                    raise ValueError(f"node {i} runs without governance: send no authorization")
                else:
                    bad.append(i)
                continue
            try:
                d = r["partial"]
                if not isinstance(d, dict) or d.get("identifier") != i:
                    raise InvalidSignatureShare("partial of another node", [i])
                if j.verify:  # else relayed as is: the client parses and checks every proof
                    verify_partial(j.public, j.eval_request, PartialEval.from_dict(d))
                good.append(d)
            except (CryptoError, KeyError):
                bad.append(i)
        if bad:
            raise InvalidSignatureShare("invalid DiSE partial evaluations", bad)
        j.partials = good
        return []

    @staticmethod
    def _set_ecdsa(j: ExtraJob, sig: EcdsaSignature) -> None:
        j.signature = sig.to_compact()
        j.recovery_id = sig.recovery_id


def extra_for(gw: Any) -> ExtraGateway:
    """The gateway's ExtraGateway, created on first use."""
    ext = getattr(gw, "_extra", None)
    if ext is None:
        ext = ExtraGateway(gw)
        gw._extra = ext
    return ext
