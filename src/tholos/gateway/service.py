"""The gateway's operations, independent of HTTP: keys (create, import, list, derive, refresh) and
signing. The REST layer (api.py) only validates input and maps errors to status codes."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from tholos.crypto.errors import CryptoError
from tholos.crypto.keys import PublicKeyPackage
from tholos.gateway import attestation, committee, repair
from tholos.gateway.batcher import Batcher
from tholos.gateway.errors import GatewayError as GatewayError
from tholos.gateway.nodes import NodeSet
from tholos.gateway.protocols import ProtocolDriver, ProtocolFailed
from tholos.gateway.rounds import SchemeJob
from tholos.gateway.store import GatewayStore, KeyRow
from tholos.gateway.transport import NodeRefused, NodeTransport, NodeUnavailable
from tholos.rpc import node_pb2 as pb
from tholos.schemes import SCHEMES, OptionNotForScheme, Scheme
from tholos.transport.e2e import EnvelopeError, PeerIdentity, context

log = logging.getLogger("tholos.gateway")


@dataclass
class KeygenJob:
    scheme: Scheme
    label: str | None
    key_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    row: KeyRow | None = None
    error: str = ""
    status: int = 200


class Gateway:
    def __init__(
        self,
        transports: dict[int, NodeTransport],
        roster: dict[int, PeerIdentity],
        store: GatewayStore,
        threshold: int,
        *,
        rpc_timeout: float = 5.0,
        dkg_timeout: float = 30.0,
        quarantine_seconds: float = 60.0,
        pool_batch: int = 2048,
        recommit_seconds: float | None = 5.0,
    ) -> None:
        self.nodes = NodeSet(
            transports,
            rpc_timeout=rpc_timeout,
            quarantine_seconds=quarantine_seconds,
            pool_batch=pool_batch,
        )
        self.roster = roster
        self.store = store
        self.threshold = threshold
        self.rpc_timeout = rpc_timeout
        self.driver = ProtocolDriver(self.nodes, roster, dkg_timeout)
        self.keygen_batcher: Batcher[KeygenJob] = Batcher(
            self._keygen_batch, max_batch=256, max_inflight=2
        )
        self._health: asyncio.Task[None] | None = None
        self._resume: asyncio.Task[int] | None = None
        self.recommit_seconds = recommit_seconds  # None: missed commits wait for `keys repair`
        self._next_recommit = 0.0
        self._came_back = False
        self._up: dict[int, bool] = {}
        self._packages: dict[str, tuple[KeyRow, PublicKeyPackage[Any]]] = {}

    async def start(self) -> None:
        self._up = await self.nodes.probe_all()
        attestation.of(self).start()  # sessions in the background (gateway/attestation.py)
        self.keygen_batcher.start()
        self._health = asyncio.create_task(self._health_loop())
        self._resume = asyncio.create_task(self._resume_commits())

    async def stop(self) -> None:
        if self._health:
            self._health.cancel()
        if self._resume:
            self._resume.cancel()
        await attestation.detach(self)
        signing = getattr(self, "_round_signing", None)  # gateway/scheme_protocols.rounds_for
        if signing is not None:
            await signing.close()
        await self.keygen_batcher.stop()
        await self.nodes.close()

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self._recommit(await self.nodes.probe_all())
            except Exception:  # never let the health loop die
                log.exception("health probe failed")

    def _recommit(self, up: dict[int, bool]) -> None:
        """Re-send missed refresh commits (in the background) when a node that may wait for one
        is up: it came back since the last probe, or it reports refreshed shares prepared but
        not committed. At most one run at a time and one per `recommit_seconds`."""
        self._came_back |= any(ok and not self._up.get(i, True) for i, ok in up.items())
        self._up = up
        ready = [i for i, ok in up.items() if ok]
        pending = any((info := self.nodes.nodes[i].info) and info.pending_refresh for i in ready)
        if (
            self.recommit_seconds is None
            or not (self._came_back or pending)
            or (self._resume is not None and not self._resume.done())
            or time.monotonic() < self._next_recommit
        ):
            return
        self._came_back = False
        self._next_recommit = time.monotonic() + self.recommit_seconds
        self._resume = asyncio.create_task(self._resume_commits(ready))

    async def _resume_commits(self, only: list[int] | None = None) -> int:
        """`repair.resume_commits` as a background task: keys left waiting, -1 on error."""
        try:
            left = await repair.resume_commits(self, only)
            await committee.resume_retires(self, only)  # reshare: old holders left out
            return left
        except Exception:  # nobody awaits this task: log it here
            log.exception("re-sending refresh commits failed")
            return -1

    # -- keys --------------------------------------------------------------------------------------
    def key(self, key_id: str) -> KeyRow:
        row = self.store.get_key(key_id)
        if row is None:
            raise GatewayError(404, "unknown_key", f"unknown key {key_id}")
        return row

    async def create_keys(
        self, scheme: str, count: int = 1, label: str | None = None
    ) -> list[KeyRow]:
        jobs = [KeygenJob(SCHEMES[scheme], label) for _ in range(count)]
        await self.keygen_batcher.submit(jobs)
        failed = [j for j in jobs if j.row is None]
        if failed:
            raise GatewayError(
                failed[0].status or 503, "keygen_failed", failed[0].error or "key generation failed"
            )
        return [j.row for j in jobs if j.row is not None]

    async def _keygen_batch(self, jobs: list[KeygenJob]) -> None:
        excluded: set[int] = set()
        for _attempt in range(2):
            participants = [i for i in self.nodes.usable() if i not in excluded]
            if len(participants) < len(self.nodes.ids):
                await asyncio.gather(
                    *(
                        self.nodes.probe(i, patient=True)
                        for i in self.nodes.ids
                        if i not in participants
                    )
                )
                participants = [i for i in self.nodes.usable() if i not in excluded]
            if len(participants) < len(self.nodes.ids):
                missing = sorted(set(self.nodes.ids) - set(participants))
                for j in jobs:
                    j.error, j.status = (
                        f"key generation needs every node; unavailable: {missing}",
                        503,
                    )
                return
            sessions = [
                {"session": j.key_id, "scheme": j.scheme.name, "threshold": self.threshold}
                for j in jobs
            ]
            try:
                res = await self.driver.run("dkg", participants, sessions)
            except ProtocolFailed as exc:
                log.warning("DKG batch failed: %s (culprits %s)", exc, exc.culprits)
                for c in exc.culprits:
                    self.nodes.quarantine(c, f"misbehaved in DKG: {exc}")
                for j in jobs:
                    j.error, j.status = str(exc), 503
                if not exc.culprits and not exc.unavailable:
                    return
                for j in jobs:
                    j.key_id = uuid.uuid4().hex
                continue
            rows = []
            now = time.time()
            for j in jobs:
                pkg_dict = res.results[j.key_id]
                public = PublicKeyPackage.from_dict(pkg_dict)
                meta: dict[str, Any] = {"imported": False, "participants": participants}
                if j.key_id in res.excluded:
                    meta["dkg_excluded"] = res.excluded[j.key_id]
                    log.warning("key %s: DKG excluded dealers %s", j.key_id, res.excluded[j.key_id])
                rows.append(
                    KeyRow(
                        j.key_id,
                        j.scheme.name,
                        j.label,
                        j.scheme.public_key(public).hex(),
                        pkg_dict,
                        meta,
                        now,
                    )
                )
            self.store.put_keys(rows)
            for j, r in zip(jobs, rows, strict=True):
                j.row, j.error = r, ""
            return

    async def import_key(
        self,
        scheme: str,
        label: str | None,
        public: dict[str, Any],
        meta: dict[str, Any],
        sealed: dict[int, dict[str, str]],
    ) -> KeyRow:
        """Store a key split by the client (trusted dealer, key ceremony): each node receives its
        share encrypted to its identity key; the gateway never sees a share."""
        sch = SCHEMES[scheme]
        try:
            pkg = PublicKeyPackage.from_dict(public)
        except CryptoError as exc:
            raise GatewayError(422, "bad_request", f"bad public key package: {exc}") from None
        if pkg.group is not sch.group:
            raise GatewayError(
                422, "bad_request", "public key package is not of this scheme's group"
            )
        if set(sealed) != set(pkg.identifiers) or set(pkg.identifiers) - set(self.nodes.ids):
            raise GatewayError(422, "bad_request", "one sealed share per cluster node is required")
        key_id = uuid.uuid4().hex
        batch = key_id
        meta = {
            **{k: v for k, v in meta.items() if k in ("xpub",)},
            "imported": True,
            "participants": pkg.identifiers,
        }

        async def one(i: int) -> pb.ProtocolReply:
            body = {
                "batch": batch,
                "key_id": key_id,
                "scheme": scheme,
                "meta": meta,
                "public": public,
                "sealed": sealed[i],
            }
            return await self.nodes.transport(i).protocol(
                pb.ProtocolRequest(
                    protocol="import", phase="store", payload=json.dumps(body).encode()
                ),
                self.driver.timeout,
            )

        replies = await asyncio.gather(*(one(i) for i in pkg.identifiers), return_exceptions=True)
        for i, rep in zip(pkg.identifiers, replies, strict=True):
            if isinstance(rep, NodeRefused):
                raise GatewayError(
                    422, "import_refused", f"node {i} refused the import: {rep.reason}"
                )
            if isinstance(rep, BaseException):
                raise GatewayError(503, "node_unavailable", f"node {i}: {rep}")
            try:
                self.driver._verifier.verify(
                    i,
                    context("import", "store", batch),
                    rep.envelope.payload,
                    rep.envelope.signature,
                )
            except EnvelopeError as exc:
                raise GatewayError(502, "bad_node_reply", str(exc)) from None
        row = KeyRow(key_id, scheme, label, sch.public_key(pkg).hex(), public, meta, time.time())
        self.store.put_keys([row])
        return row

    def derive(self, key_id: str, path: str) -> dict[str, Any]:
        row = self.key(key_id)
        sch = SCHEMES[row.scheme]
        if not sch.supports_derivation:
            raise GatewayError(
                409, "unsupported", f"{row.scheme} keys do not support BIP32 derivation"
            )
        public = PublicKeyPackage.from_dict(row.package)
        try:
            tweak, xpub = sch.derive(public, row.meta, path)
        except CryptoError as exc:
            raise GatewayError(422, "bad_path", str(exc)) from None
        return {
            "key_id": key_id,
            "path": path,
            "public_key": sch.public_key(public, tweak).hex(),
            "xpub": xpub,
        }

    async def refresh(self, key_id: str) -> KeyRow:
        row = self.key(key_id)
        participants = sorted(int(i) for i in row.package["verifying_shares"])
        if repair.waiting(row):
            lag = repair.waiting(row)
            raise GatewayError(
                409,
                "refresh_uncommitted",
                f"nodes {lag} have not committed the last refresh (the gateway re-sends the "
                f"commit when they are up; if one lost its prepared share, run `tholos keys "
                f"repair {key_id} --node N`)",
            )
        usable = self.nodes.usable(participants)
        if usable != participants:
            raise GatewayError(
                503, "nodes_unavailable", "refresh needs every holder of the key online"
            )
        try:
            res = await self.driver.run("refresh", participants, [{"session": key_id}])
        except ProtocolFailed as exc:
            for c in exc.culprits:
                self.nodes.quarantine(c, f"misbehaved in refresh: {exc}")
            raise GatewayError(
                503, "refresh_failed", str(exc), culprits=list(exc.culprits)
            ) from None
        pkg = res.results[key_id]
        sch = SCHEMES[row.scheme]
        if sch.public_key(PublicKeyPackage.from_dict(pkg)).hex() != row.public_key:
            raise GatewayError(500, "refresh_failed", "refresh changed the public key")
        # Commit point (two-phase, see gateway/repair.py): every node prepared the new share.
        new = repair.prepared_row(row, pkg, res.batch, res.finish)
        new = replace(new, meta={**new.meta, "refreshed": time.time()})
        self.store.put_keys([new])
        return await repair.commit_refresh(self, new)

    # -- signing -----------------------------------------------------------------------------------
    def sign_job(
        self,
        key_id: str,
        message: bytes,
        path: str = "",
        taproot: bool = False,
        merkle_root: bytes | None = None,
    ) -> SchemeJob:
        """A checked job for a key of a scheme with pre-shared nonces (FROST)."""
        from tholos.gateway.scheme_protocols import rounds_for

        row = self.key(key_id)
        check_options(row.scheme, path=path, taproot_tweak=taproot, merkle_root=merkle_root)
        return rounds_for(self).job(key_id, message, path, None, taproot, merkle_root)

    def _public(self, row: KeyRow) -> PublicKeyPackage[Any]:
        """Parsed public key package, cached per (key, package version: refresh replaces it)."""
        cached = self._packages.get(row.key_id)
        if cached is not None and cached[0] is row:
            return cached[1]
        public = PublicKeyPackage.from_dict(row.package)
        if len(self._packages) > 100_000:
            self._packages.clear()
        self._packages[row.key_id] = (row, public)
        return public

    async def sign(self, jobs: list[SchemeJob]) -> list[SchemeJob]:
        """Sign the jobs through the scheme registry (gateway/scheme_protocols.py)."""
        from tholos.gateway.scheme_protocols import rounds_for

        return await rounds_for(self).submit(jobs)

    def public_key_for(self, job: SchemeJob) -> bytes:
        from tholos.gateway.scheme_protocols import rounds_for

        return rounds_for(self).public_key_for(job)


__all__ = ["Gateway", "GatewayError", "NodeUnavailable"]


def check_options(scheme: str, **given: Any) -> None:
    """409 `option_not_for_scheme`, naming the option, for an option the scheme does not take
    (the scheme registry decides: `Scheme.options`)."""
    try:
        SCHEMES[scheme].check_options(**given)
    except OptionNotForScheme as exc:
        raise GatewayError(
            409, "option_not_for_scheme", str(exc), option=exc.option, scheme=scheme
        ) from None
