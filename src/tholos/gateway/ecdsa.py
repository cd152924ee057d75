"""Threshold ECDSA at the gateway: presignature pools and one-round signing.

Per key, a pool of presignature public parts (`PresignaturePublic`) in memory; the nodes hold the
sealed secret parts. Pools are filled by batched `ecdsa-presign` protocol runs among all usable
holders (>= 2t-1), driven by the same `ProtocolDriver` as the DKG (echo, E2E-encrypted private
shares, every node's finish signed and compared). When a pool falls below `low_water` a
background refill starts. Signing takes one presignature per request and sends one `ecdsa-sign`
round to 2t-1 signers; the gateway interpolates s and verifies the final signature
(libsecp256k1); only if that fails does it check each share (`combine_robust`) to name the
culprits, who are quarantined, and the request is retried with another presignature and other
signers. A gateway restart forgets its pools: the nodes' orphaned rows are never used. A
governed request refused by policy on every signer gives its presignature back (none used it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

from tholos.crypto.ecdsa.presign import PresignaturePublic, key_fingerprint, min_participants
from tholos.crypto.ecdsa.sign import SignatureShare, _online, combine_robust
from tholos.crypto.ecdsa.signature import finish_signature
from tholos.crypto.errors import CryptoError, InvalidSignature
from tholos.crypto.groups.secp256k1 import N
from tholos.crypto.hazmat.shamir import interpolate
from tholos.crypto.keys import PublicKeyPackage
from tholos.gateway.protocols import PHASES, ProtocolFailed
from tholos.gateway.repair import epoch, waiting
from tholos.gateway.rounds import RoundScheme, SchemeJob
from tholos.schemes import SCHEMES, Scheme

log = logging.getLogger("tholos.gateway")
PHASES["ecdsa-presign"] = ("round1", "round2", "finish")


class EcdsaRounds(RoundScheme):
    """`ecdsa-sign` with 2t-1 signers, each item naming one presignature from the key's pool."""

    kind = "ecdsa"
    protocol = "ecdsa-sign"

    def __init__(
        self, gw: Any, *, presign_batch: int = 100, low_water: int = 32, auto_refill: bool = True
    ) -> None:
        super().__init__(gw)
        self.presign_batch = presign_batch
        self.low_water = low_water
        self.auto_refill = auto_refill
        self.pools: dict[str, deque[PresignaturePublic]] = defaultdict(deque)
        self._presigning: dict[str, asyncio.Task[int]] = {}
        self.presigned_total = 0
        self._fingerprints: dict[str, tuple[PublicKeyPackage[Any], bytes]] = {}

    async def close(self) -> None:
        for t in list(self._presigning.values()):
            t.cancel()

    # -- the round ---------------------------------------------------------------------------------
    def prepare(self, job: SchemeJob, scheme: Scheme, eval_request: dict[str, Any] | None) -> None:
        from tholos.gateway.errors import GatewayError

        if len(job.message) != 32:
            raise GatewayError(409, "bad_length", "ECDSA signs a 32-byte digest (--message HEX32)")
        job.tweak = scheme.tweak(job.public, job.row.meta, job.path)
        if eval_request is not None:
            raise GatewayError(409, "unsupported", f"{job.row.scheme} keys cannot evaluate")

    def left_out(self, job: SchemeJob) -> list[int]:
        # Presignatures come from a fixed participant set: a node known not to hold the current
        # share is left out up front (BLS/DiSE, like FROST, let it refuse as stale and retry).
        return [*waiting(job.row), *self.gw.nodes.broken(job.key_id)]

    async def item(self, job: SchemeJob, signers: list[int]) -> tuple[dict[str, Any], Any] | None:
        pre = await self._take_presig(job, signers)
        if pre is None:
            if not job.error:
                job.error, job.status = "no presignature available", 503
            return None
        return {"digest": job.message.hex(), "path": job.path, "presig": pre.session.hex()}, pre

    def give_back(self, job: SchemeJob, state: Any) -> None:
        if state is not None:
            self.pools[job.key_id].appendleft(state)

    def combine(self, job: SchemeJob, state: Any, got: dict[int, dict[str, Any]]) -> list[int]:
        pre: PresignaturePublic = state
        shares = {i: int(r["s"], 16) % N for i, r in got.items()}
        o = _online(pre, job.message, job.tweak)
        try:  # fast path: interpolate and verify the final signature once
            sig = finish_signature(o.big_r, interpolate(shares, N), o.public_key, job.message)
            bad: list[int] = []
        except (InvalidSignature, CryptoError, ValueError):
            res = combine_robust(
                pre,
                job.message,
                [SignatureShare(pre.session, i, s) for i, s in shares.items()],
                tweak=job.tweak,
            )
            sig, bad = res.signature, list(res.excluded)
        job.signature = sig.to_compact()
        job.recovery_id = sig.recovery_id
        return bad

    # -- presignature pools --------------------------------------------------------------------
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
        from tholos.gateway.errors import GatewayError
        from tholos.gateway.key_lifecycle import check_usable

        row = self.gw.key(key_id)
        check_usable(row)  # 409: a disabled key gets no presignatures (every node refuses)
        if getattr(SCHEMES[row.scheme], "kind", "") != "ecdsa":
            raise GatewayError(409, "unsupported", "presignatures are for ecdsa keys")
        public = self.gw._public(row)
        added = 0
        while added < count:
            n = min(self.presign_batch, count - added)
            lacking = [*waiting(row), *self.gw.nodes.broken(key_id)]
            added += await self._presign_once(key_id, public, n, epoch(row), lacking)
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
        from tholos.gateway.errors import GatewayError

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

    async def _take_presig(self, job: SchemeJob, signers: list[int]) -> PresignaturePublic | None:
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
