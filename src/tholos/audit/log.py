"""The node's append-only audit chain in SQLite (WAL, synchronous=FULL), with signed checkpoints.

A checkpoint is written automatically every `checkpoint_every` entries and on demand. Sensitive
values are HMACed (`AuditLog.hmac`) rather than dropped, so an auditor holding the HMAC key can
still confirm a value without the log revealing it.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import json
import sqlite3
import threading
import time as _time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tholos.audit.records import (
    FORMAT_VERSION,
    GENESIS_PREV_HASH,
    AuditEntry,
    Checkpoint,
    checkpoint_message,
    entry_hash_encoded,
)
from tholos.governance import NodeSigner, canonical_json

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_checkpoint (
    seq INTEGER PRIMARY KEY,
    head_hash TEXT NOT NULL,
    time INTEGER NOT NULL,
    signature TEXT NOT NULL
);
"""


IdentitySigner = NodeSigner
"""The node identity key (or the vault holding it): Ed25519 sign, nothing else."""


def _now_ms() -> int:
    return int(_time.time() * 1000)


class AuditLog:
    """Append-only hash chain of one node's decisions."""

    def __init__(
        self,
        path: str | Path,
        node_id: str,
        identity: IdentitySigner,
        *,
        checkpoint_every: int = 100,
        hmac_key: bytes | None = None,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")
        self.node_id = node_id
        self._identity = identity
        self._every = checkpoint_every
        self._hmac_key = hmac_key
        self._clock = clock_ms
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def hmac(self, value: str | bytes) -> str:
        """HMAC-SHA256 of a sensitive value under the node's audit key, for use in payloads."""
        if self._hmac_key is None:
            raise ValueError("this audit log has no HMAC key")
        data = value.encode() if isinstance(value, str) else value
        return "hmac-sha256:" + _hmac.new(self._hmac_key, data, hashlib.sha256).hexdigest()

    def _head(self) -> tuple[int, str]:
        row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, GENESIS_PREV_HASH) if row is None else (int(row[0]), str(row[1]))

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last entry; (0, zeros) when empty."""
        with self._lock:
            return self._head()

    def append(self, kind: str, payload: Mapping[str, Any]) -> AuditEntry:
        """Append one entry (durable on return); checkpoint if `checkpoint_every` is reached."""
        text = canonical_json(dict(payload)).decode()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq, prev = self._head()
                seq += 1
                now = self._clock()
                digest = entry_hash_encoded(self.node_id, seq, now, kind, text, prev)
                self._db.execute(
                    "INSERT INTO audit (seq, time, kind, payload, prev_hash, hash) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (seq, now, kind, text, prev, digest),
                )
                if seq % self._every == 0:
                    self._checkpoint(seq, digest)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return AuditEntry(self.node_id, seq, now, kind, json.loads(text), prev, digest)

    def append_many(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Append several entries in ONE transaction (one fsync), checkpointing as `append` does."""
        if not items:
            return
        # Each payload is encoded once: the stored text is also what the entry hash covers.
        texts = [canonical_json(dict(payload)).decode() for _, payload in items]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq, prev = self._head()
                rows: list[tuple[int, int, str, str, str, str]] = []
                heads: list[tuple[int, str]] = []
                for (kind, _), text in zip(items, texts, strict=True):
                    seq += 1
                    now = self._clock()
                    digest = entry_hash_encoded(self.node_id, seq, now, kind, text, prev)
                    rows.append((seq, now, kind, text, prev, digest))
                    if seq % self._every == 0:
                        heads.append((seq, digest))
                    prev = digest
                self._db.executemany(
                    "INSERT INTO audit (seq, time, kind, payload, prev_hash, hash) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                for cp_seq, cp_hash in heads:
                    self._checkpoint(cp_seq, cp_hash)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _checkpoint(self, seq: int, head_hash: str) -> Checkpoint:
        now = self._clock()
        signature = self._identity.sign(checkpoint_message(self.node_id, seq, head_hash, now))
        self._db.execute(
            "INSERT OR REPLACE INTO audit_checkpoint (seq, head_hash, time, signature) "
            "VALUES (?, ?, ?, ?)",
            (seq, head_hash, now, signature.hex()),
        )
        return Checkpoint(self.node_id, seq, head_hash, now, signature.hex())

    def checkpoint(self) -> Checkpoint:
        """Sign the current head now (e.g. on an auditor's request or at shutdown)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq, head_hash = self._head()
                cp = self._checkpoint(seq, head_hash)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return cp

    def latest_checkpoint(self) -> Checkpoint | None:
        with self._lock:
            row = self._db.execute(
                "SELECT seq, head_hash, time, signature FROM audit_checkpoint "
                "ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return Checkpoint(self.node_id, int(row[0]), str(row[1]), int(row[2]), str(row[3]))

    def entries(self) -> list[AuditEntry]:
        """All entries in seq order, as stored (no verification)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, time, kind, payload, prev_hash, hash FROM audit ORDER BY seq"
            ).fetchall()
        return [
            AuditEntry(self.node_id, int(s), int(t), str(k), json.loads(p), str(ph), str(h))
            for s, t, k, p, ph, h in rows
        ]

    def payloads(self, kind: str) -> list[dict[str, Any]]:
        """The payloads of every entry of `kind`, in seq order (as stored, not verified)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT payload FROM audit WHERE kind = ? ORDER BY seq", (kind,)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def export_lines(self) -> Iterator[str]:
        """The chain as JSON lines: a header, then entries by seq, each checkpoint after its entry."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, time, kind, payload, prev_hash, hash FROM audit ORDER BY seq"
            ).fetchall()
            cps = self._db.execute(
                "SELECT seq, head_hash, time, signature FROM audit_checkpoint ORDER BY seq"
            ).fetchall()
        yield json.dumps({"type": "header", "format": FORMAT_VERSION, "node_id": self.node_id})
        by_seq: dict[int, list[Checkpoint]] = {}
        for s, hh, t, sig in cps:
            by_seq.setdefault(int(s), []).append(
                Checkpoint(self.node_id, int(s), str(hh), int(t), str(sig))
            )
        for cp in by_seq.pop(0, []):
            yield json.dumps(cp.to_json(), sort_keys=True)
        for s, t, k, p, ph, h in rows:
            entry = AuditEntry(self.node_id, int(s), int(t), str(k), json.loads(p), str(ph), str(h))
            yield json.dumps(entry.to_json(), sort_keys=True, ensure_ascii=False)
            for cp in by_seq.pop(int(s), []):
                yield json.dumps(cp.to_json(), sort_keys=True)
        for s in sorted(by_seq):  # checkpoints whose entry is missing (a truncated chain)
            for cp in by_seq[s]:
                yield json.dumps(cp.to_json(), sort_keys=True)

    def export_jsonl(self, path: str | Path) -> None:
        """Write `export_lines` to a file."""
        with open(path, "w", encoding="utf-8") as out:
            for line in self.export_lines():
                out.write(line + "\n")
