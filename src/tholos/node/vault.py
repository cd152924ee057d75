"""KeyVault: the node's narrow key boundary. It stores, refreshes and signs with shares; it never
returns a share. Nonce pools live here too: generated in batches, sealed, and consumed (deleted
durably) before the signature share that uses them is returned.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from tholos.crypto.errors import CryptoError
from tholos.crypto.keys import KeyShare, PublicKeyPackage
from tholos.node.barrier import Barrier, SealError
from tholos.node.hooks import NO_HOOKS, NodeHooks
from tholos.node.store import NodeStore
from tholos.schemes import POOLS, SCHEMES, Scheme, SigningRequest, as_frost

if TYPE_CHECKING:
    from tholos.node.signer.client import SignerClient

KEY_TABLE = "keys"
NONCE_TABLE = "nonces"
PENDING_TABLE = "pending_keys"
DISABLED = "disabled:"  # node meta row per disabled key (node-side: a gateway cannot skip it)
SIGNER_SCAN_POLL = 1.0  # seconds between the node's looks at its signer's scan progress
RETIRE = "retire:"  # node meta row per key a reshare left this node out of (node/reshare.py)
#: opened shares a vault keeps by default (node config `share_cache`): ~1.5 KB each
SHARE_CACHE = 10_000

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most `capacity` entries, the least recently used dropped first (0: keeps nothing).
    Bounds what a node holding 100,000 keys keeps opened. An entry dropped is only unreferenced:
    Python cannot zero the memory of immutable objects reliably, so an evicted share stays in
    the heap until the allocator reuses it; the bound limits how many there are, not that."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"cache capacity must be 0 or more, not {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()  # the node's gRPC threads and its share scan share it

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __repr__(self) -> str:  # never the entries (shares)
        return f"LruCache({len(self._items)}/{self.capacity})"

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        if self.capacity == 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def pop(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            return self._items.pop(key, default)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class VaultError(Exception):
    """A request the vault refuses (unknown key, used nonce...). Safe to show to the caller."""


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    scheme: Scheme
    share: KeyShare[Any]
    meta: dict[str, Any]


@dataclass(frozen=True)
class KeyView:
    """What the node needs to check a request for a key: no secret (the share stays sealed)."""

    key_id: str
    scheme: Scheme
    public: PublicKeyPackage[Any]
    meta: dict[str, Any]


@dataclass(frozen=True)
class ShareResult:
    request_id: str
    share: bytes = b""
    error: str = ""


PolicyCheck = Callable[[str, SigningRequest], None]


def allow_all(key_id: str, request: SigningRequest) -> None:
    """Placeholder for the governance engine: every node will check every request here (intent,
    limits, approvals) and raise to refuse. Nothing is enforced yet."""


class KeyVault:
    def __init__(
        self, store: NodeStore, barrier: Barrier, node_id: int, cache_size: int = SHARE_CACHE
    ) -> None:
        """`cache_size`: opened shares (and, with a signer, public views) kept, least recently
        used dropped first; 0 opens the share for every request."""
        self._store = store
        self._barrier = barrier
        self.node_id = node_id
        self._cache: LruCache[str, KeyRecord] = LruCache(cache_size)
        self._lock = threading.Lock()
        self.policy: PolicyCheck = allow_all
        #: where shares pass on their way out (node/hooks.py); a no-op outside tests.
        self.hooks: NodeHooks = NO_HOOKS
        #: key id -> newer epoch a request asked for: this node's share is stale (reported by Info).
        self.stale: dict[str, int] = {}
        #: key ids whose sealed share fails to open (tampered, swapped, corrupted): reported by
        #: Info.broken_keys, refused for signing, rebuilt by `tholos keys repair`.
        self.broken: set[str] = set()
        #: shares the start-up scan has not opened yet (Info.shares_unchecked): while above 0,
        #: `broken` may be incomplete.
        self.unchecked = 0
        self._scan_stop = threading.Event()
        #: the node's signer process (node/signer/): when set, every signature share, DiSE
        #: evaluation, nonce and presignature is made there, and `view` opens no share here.
        self.signer: SignerClient | None = None
        #: key id -> (public JSON, its view)
        self._views: LruCache[str, tuple[str, KeyView]] = LruCache(cache_size)

    def __repr__(self) -> str:
        return f"KeyVault(node={self.node_id}, <sealed>)"

    # -- keys ------------------------------------------------------------------------------------
    def _rows(
        self,
        records: Sequence[tuple[str, Scheme, KeyShare[Any], dict[str, Any]]],
        table: str,
        tag: str,
    ) -> list[tuple[str, str, str, bytes]]:
        """(key_id, scheme, public JSON, sealed share); `tag` prefixes the sealed row id."""
        rows = []
        for key_id, scheme, share, meta in records:
            if share.identifier != self.node_id:
                raise VaultError("share identifier does not match this node")
            public = json.dumps(
                {"scheme": scheme.name, "public": share.public.to_dict(), "meta": meta}
            )
            secret = json.dumps(share.export_secret()).encode()
            sealed = self._barrier.seal(table, tag + key_id, secret)
            rows.append((key_id, scheme.name, public, sealed))
        return rows

    def store_shares(
        self, records: Sequence[tuple[str, Scheme, KeyShare[Any], dict[str, Any]]]
    ) -> None:
        self._store.put_keys(self._rows(records, KEY_TABLE, ""))
        for key_id, scheme, share, meta in records:
            self._keep(KeyRecord(key_id, scheme, share, meta))

    def store_repaired(
        self, records: Sequence[tuple[str, Scheme, KeyShare[Any], dict[str, Any]]]
    ) -> None:
        """A share rebuilt by repair replaces whatever this node held (an older epoch, a prepared
        refresh that never committed, nothing at all)."""
        self.store_shares(records)
        self._store.drop_pending([r[0] for r in records])
        for r in records:
            self.stale.pop(r[0], None)
            self.broken.discard(r[0])

    # -- two-phase refresh -----------------------------------------------------------------------
    @staticmethod
    def epoch(rec: KeyRecord | KeyView) -> int:
        """How many refreshes this share has been through (0: as generated or imported)."""
        return int(rec.meta.get("epoch", 0))

    def prepare_refresh(
        self, batch: str, records: Sequence[tuple[str, Scheme, KeyShare[Any], dict[str, Any]]]
    ) -> None:
        """Phase 1 (refresh finish): seal the new shares beside the current ones, durably, so a
        crash before the commit loses nothing; the current shares stay in use until the commit."""
        rows = self._rows(records, PENDING_TABLE, batch + "|")
        self._store.put_pending([(k, batch, s, p, b) for k, s, p, b in rows])

    def commit_refresh(self, batch: str) -> list[KeyRecord]:
        """Phase 2: the shares prepared by `batch` replace the current ones (the old ones are
        deleted in the same transaction). Returns the new records; [] if nothing is prepared."""
        records = []
        for key_id, scheme_name, public_json, sealed in self._store.get_pending(batch):
            secret = json.loads(self._barrier.open(PENDING_TABLE, f"{batch}|{key_id}", sealed))
            meta = json.loads(public_json).get("meta", {})
            records.append(
                (key_id, SCHEMES[scheme_name], KeyShare.import_secret(secret), dict(meta))
            )
        if not records:
            return []
        self._store.promote_pending(batch, self._rows(records, KEY_TABLE, ""))
        out = []
        for key_id, scheme, share, meta in records:
            rec = KeyRecord(key_id, scheme, share, meta)
            self._keep(rec)
            self.stale.pop(key_id, None)
            out.append(rec)
        return out

    # -- reshare: an old holder left out of the new committee ------------------------------------
    def mark_retiring(self, key_id: str, batch: str) -> None:
        """Remember (durably) that reshare `batch` leaves this node out of `key_id`'s committee."""
        self._store.put_meta(RETIRE + key_id, batch)

    def retiring(self, key_id: str) -> str | None:
        """The reshare batch whose retire deletes this node's share of `key_id`, if any."""
        return self._store.get_meta(RETIRE + key_id)

    def retire(self, key_id: str) -> bool:
        """Delete the share (and presignatures, and the mark) of a key this node no longer holds
        after a reshare; False if the share was gone already."""
        with self._lock:
            self._cache.pop(key_id)
            self.stale.pop(key_id, None)
            self.broken.discard(key_id)
            return self._store.destroy_key(key_id, [RETIRE + key_id, DISABLED + key_id])

    def drop_presignatures(self, key_ids: Sequence[str]) -> None:
        """ECDSA presignatures made with the old shares of `key_ids` (void after a reshare)."""
        self._store.drop_presignatures(key_ids)

    def pending_public(self, batch: str) -> dict[str, dict[str, Any]]:
        """Public key packages prepared by `batch` (no secret is opened)."""
        return {
            key_id: json.loads(public_json)["public"]
            for key_id, _s, public_json, _b in self._store.get_pending(batch)
        }

    def check_epoch(
        self, key_id: str, epoch: int, current: KeyRecord | KeyView | None = None
    ) -> None:
        """Refuse to use a share of another refresh epoch than the one requested: after a missed
        refresh commit this node's share no longer matches the group's verifying share, and its
        signature shares would be rejected as lies. Remembered and reported (Info.stale_keys).
        `current`: the key's record or view when the caller just read it (else read here)."""
        have = self.epoch(current if current is not None else self.view(key_id))
        if have != epoch:
            if epoch > have:
                self.stale[key_id] = epoch
            raise VaultError(
                f"stale share: key {key_id} is at refresh epoch {have} on node {self.node_id}, "
                f"the request is for epoch {epoch}; run `tholos keys repair`"
            )

    def scan(self) -> set[str]:
        """Open every stored share once and remember those that fail: a node must say which keys
        it cannot use, not fail each request that needs one. The shares opened are not kept
        (a node holding 100,000 keys would keep them all); requests open theirs on first use.
        Reads through its own SQLite connection, so it can run beside the node's requests."""
        if self.signer is not None:  # the signer scans its shares itself: follow its progress
            return self._follow_signer_scan(self.signer)
        with contextlib.closing(
            sqlite3.connect(f"file:{self._store.path}?mode=ro", uri=True, check_same_thread=False)
        ) as db:
            self.unchecked = int(db.execute("SELECT COUNT(*) FROM keys").fetchone()[0])
            for key_id, sealed in db.execute("SELECT key_id, sealed FROM keys"):
                if self._scan_stop.is_set():  # the store is closing: the rest stays unchecked
                    return set(self.broken)
                if not self._opens(key_id, sealed):
                    # Confirm on the node's own path: repair may have replaced the row since.
                    with contextlib.suppress(VaultError):
                        self.record(key_id)
                self.unchecked = max(0, self.unchecked - 1)
        self.unchecked = 0
        return set(self.broken)

    def _follow_signer_scan(self, signer: SignerClient) -> set[str]:
        """Mirror the signer's scan (broken keys, shares still unchecked) until it is done; this
        process opens no share."""
        while True:
            status = signer.status()
            self.broken.update(status["broken"])
            self.unchecked = int(status["unchecked"])
            if self.unchecked == 0 or self._scan_stop.wait(SIGNER_SCAN_POLL):
                return set(self.broken)

    def scan_in_background(self, done: Callable[[set[str]], None]) -> threading.Thread:
        """`scan` in a daemon thread (start-up is then not O(keys)); `done(broken)` at the end."""

        def run() -> None:
            try:
                broken = self.scan()
            except (sqlite3.Error, VaultError) as exc:  # store or signer gone: stays unchecked
                logging.getLogger(__name__).warning("share scan stopped: %s", exc)
                return
            done(broken)

        thread = threading.Thread(target=run, name="share-scan", daemon=True)
        self.unchecked = self._store.count_keys()  # honest from the first Info on

        def stop() -> None:  # NodeStore.close: no read of the files after the node closed them
            self._scan_stop.set()
            thread.join(timeout=30)

        self._store.before_close.append(stop)
        thread.start()
        return thread

    def _opens(self, key_id: str, sealed: bytes) -> bool:
        """Whether a sealed share opens and parses as this node's share (nothing is kept)."""
        try:
            share = KeyShare.import_secret(
                json.loads(self._barrier.open(KEY_TABLE, key_id, sealed))
            )
            return bool(share.identifier == self.node_id)
        except (SealError, CryptoError, ValueError, KeyError, TypeError):
            return False

    def public_view(self, key_id: str) -> dict[str, Any] | None:
        """The stored public JSON of a key (scheme, package, meta), without opening its share."""
        row = self._store.get_key(key_id)
        if row is None:
            return None
        view: dict[str, Any] = json.loads(row[1])
        return view

    # -- lifecycle -------------------------------------------------------------------------------
    def is_disabled(self, key_id: str) -> bool:
        return self._store.get_meta(DISABLED + key_id) is not None

    def _enabled(self, current: _Current) -> _Current:
        """`current` (a key's record or view) if the key is enabled on this node."""
        self.check_enabled(current.key_id)
        return current

    def check_enabled(self, key_id: str) -> None:
        """Refuse to sign or evaluate with a key disabled on this node."""
        if self.is_disabled(key_id):
            raise VaultError(f"key {key_id} is disabled on node {self.node_id}")

    def set_disabled(self, key_id: str, disabled: bool) -> None:
        if not self.has_key(key_id):
            raise VaultError(f"unknown key {key_id}")
        if disabled:
            self._store.put_meta(DISABLED + key_id, "1")
        else:
            self._store.delete_meta(DISABLED + key_id)

    def destroy(self, key_id: str) -> bool:
        """Delete this node's share of `key_id` durably; False if it held none (already gone)."""
        with self._lock:
            self._cache.pop(key_id)
            self.stale.pop(key_id, None)
            self.broken.discard(key_id)
            return self._store.destroy_key(key_id, [DISABLED + key_id])

    def has_key(self, key_id: str) -> bool:
        return key_id in self._cache or self._store.get_key(key_id) is not None

    def record(self, key_id: str) -> KeyRecord:
        rec = self._cache.get(key_id)
        if rec is not None:
            return rec
        row = self._store.get_key(key_id)
        if row is None:
            raise VaultError(f"unknown key {key_id}")
        scheme_name, public_json, sealed = row
        try:
            secret = json.loads(self._barrier.open(KEY_TABLE, key_id, sealed))
            share = KeyShare.import_secret(secret)
            if share.identifier != self.node_id:
                raise VaultError("share identifier does not match this node")
        except (SealError, CryptoError, VaultError, ValueError, KeyError, TypeError):
            self.broken.add(key_id)
            raise VaultError(
                f"broken share: the sealed share of key {key_id} on node {self.node_id} cannot "
                f"be opened; run `tholos keys repair {key_id} --node {self.node_id}`"
            ) from None
        self.broken.discard(key_id)
        rec = KeyRecord(
            key_id, SCHEMES[scheme_name], share, json.loads(public_json).get("meta", {})
        )
        self._keep(rec)
        return rec

    def _keep(self, rec: KeyRecord) -> None:
        """Cache an opened share, unless a signer process holds the shares: then a share opened
        here (for a protocol step) lives only as long as that step."""
        if self.signer is None:
            self._cache.put(rec.key_id, rec)

    def view(self, key_id: str) -> KeyView:
        """The key's public record. With a signer no share is opened here (the signer reports
        a broken one when asked to use it); without one the share is opened (and cached) as
        before, so a broken share is found at the first check."""
        if self.signer is None:
            rec = self.record(key_id)
            return KeyView(rec.key_id, rec.scheme, rec.share.public, rec.meta)
        row = self._store.get_key(key_id)
        if row is None:
            raise VaultError(f"unknown key {key_id}")
        scheme_name, public_json, _sealed = row
        cached = self._views.get(key_id)
        if cached is not None and cached[0] == public_json:
            return cached[1]
        d = json.loads(public_json)
        view = KeyView(
            key_id,
            SCHEMES[scheme_name],
            PublicKeyPackage.from_dict(d["public"]),
            dict(d.get("meta", {})),
        )
        self._views.put(key_id, (public_json, view))
        return view

    def with_share(self, key_id: str, fn: Callable[[KeyRecord], Any]) -> Any:
        """Run a protocol step (refresh) that needs the share, without handing it out."""
        return fn(self.record(key_id))

    # -- nonce pools -----------------------------------------------------------------------------
    def generate_nonces(self, group: str, count: int) -> list[tuple[bytes, bytes, bytes]]:
        """Generate, seal and durably store `count` nonce pairs; return (id, hiding, binding)."""
        scheme = POOLS.get(group)
        if scheme is None:
            raise VaultError(f"unknown nonce pool {group!r}")
        if self.signer is not None:
            return self.signer.nonces(group, count)
        rows: list[tuple[bytes, bytes]] = []
        out: list[tuple[bytes, bytes, bytes]] = []
        for secret, hiding, binding in scheme.new_nonces(count):
            nid = os.urandom(16)
            rows.append((nid, self._barrier.seal(NONCE_TABLE, nid, secret)))
            out.append((nid, hiding, binding))
        self._store.put_nonces(group, rows)
        return out

    # -- signing ---------------------------------------------------------------------------------
    def sign_batch(
        self, requests: Sequence[SigningRequest], epochs: Mapping[str, int] | None = None
    ) -> list[ShareResult]:
        """Validate every request, delete their nonces durably, then compute the shares.
        `epochs` (request id -> refresh epoch the gateway expects) refuses stale shares.
        With a signer, the same checks run here on the public record first, then the signer
        (which re-checks them) takes the nonces and computes the shares."""
        if self.signer is not None:
            return self._sign_by_signer(requests, epochs)
        accepted: list[tuple[SigningRequest, KeyRecord, bytes]] = []
        results: dict[str, ShareResult] = {}
        usable = _PerBatch(lambda key_id: self._enabled(self.record(key_id)))
        for req in requests:
            try:
                rec = usable(req.key_id)
                if epochs is not None:
                    self.check_epoch(req.key_id, epochs.get(req.request_id, 0), rec)
                mine = req.commitments.get(self.node_id)
                if mine is None:
                    raise VaultError("this node is not a signer of the request")
                rec.scheme.check_request(rec.share.public, req)
                self.policy(req.key_id, req)
                accepted.append((req, rec, mine.nonce_id))
            except Exception as exc:  # refused: nothing consumed
                results[req.request_id] = ShareResult(req.request_id, error=_describe(exc))
        # The nonces leave the database (committed) before any share is computed.
        taken = self._store.take_nonces([nid for _, _, nid in accepted])
        for req, rec, nid in accepted:
            got = taken.pop(nid, None)
            if got is None:
                results[req.request_id] = ShareResult(req.request_id, error="unknown or used nonce")
                continue
            group, sealed = got
            try:
                if group != rec.scheme.pool:
                    raise VaultError("nonce belongs to another scheme's pool")
                secret = self._barrier.open(NONCE_TABLE, nid, sealed)
                frost = as_frost(rec.scheme)
                share = self.hooks.frost_share(
                    frost, frost.sign_share(rec.share, req, secret, rec.meta)
                )
                results[req.request_id] = ShareResult(req.request_id, share=share)
            except Exception as exc:
                results[req.request_id] = ShareResult(req.request_id, error=_describe(exc))
        return [results[r.request_id] for r in requests]

    def _sign_by_signer(
        self, requests: Sequence[SigningRequest], epochs: Mapping[str, int] | None
    ) -> list[ShareResult]:
        assert self.signer is not None
        accepted: list[SigningRequest] = []
        results: dict[str, ShareResult] = {}
        views: dict[str, KeyView] = {}
        usable = _PerBatch(lambda key_id: self._enabled(self.view(key_id)))
        for req in requests:
            try:
                view = usable(req.key_id)
                if epochs is not None:
                    self.check_epoch(req.key_id, epochs.get(req.request_id, 0), view)
                if self.node_id not in req.commitments:
                    raise VaultError("this node is not a signer of the request")
                view.scheme.check_request(view.public, req)
                self.policy(req.key_id, req)
                accepted.append(req)
                views[req.request_id] = view
            except Exception as exc:  # refused: nothing consumed
                results[req.request_id] = ShareResult(req.request_id, error=_describe(exc))
        if accepted:
            for res in self.signer.frost_sign(accepted, epochs):
                if res.share:
                    frost = as_frost(views[res.request_id].scheme)
                    res = ShareResult(
                        res.request_id, share=self.hooks.frost_share(frost, res.share)
                    )
                results[res.request_id] = res
        return [results[r.request_id] for r in requests]


_Current = TypeVar("_Current", KeyRecord, KeyView)


class _PerBatch(Generic[_Current]):
    """A key's record or view, read and checked (enabled) once per signing batch however many
    of its requests name it; a key that fails its check fails every request naming it, each
    with the same error. Not kept across batches: a disable or a new share counts from the
    next batch on, as it did per request."""

    def __init__(self, read: Callable[[str], _Current]) -> None:
        self._read: Callable[[str], _Current] = read
        self._got: dict[str, _Current | Exception] = {}

    def __call__(self, key_id: str) -> _Current:
        got = self._got.get(key_id)
        if got is None:
            try:
                got = self._read(key_id)
            except Exception as exc:
                got = exc
            self._got[key_id] = got
        if isinstance(got, Exception):
            raise got.with_traceback(None)  # not a traceback growing per request
        return got


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
