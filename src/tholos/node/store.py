"""The node's SQLite database (WAL, synchronous=FULL): sealed key shares and nonce pools.

Only ciphertexts from the Barrier and public values are stored. Every write commits before the
caller acts on it; in particular `take_nonces` deletes nonce rows in a committed transaction and
only then hands them to the signer, so a crash can lose a nonce but never reuse one.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    scheme TEXT NOT NULL,
    public TEXT NOT NULL,
    sealed BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS nonces (
    nonce_id BLOB PRIMARY KEY,
    grp TEXT NOT NULL,
    handed_out INTEGER NOT NULL DEFAULT 0,
    sealed BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS nonces_free ON nonces (grp, handed_out);
CREATE TABLE IF NOT EXISTS pending_keys (
    key_id TEXT PRIMARY KEY,
    batch TEXT NOT NULL,
    scheme TEXT NOT NULL,
    public TEXT NOT NULL,
    sealed BLOB NOT NULL
);
"""


def is_storage_full(exc: BaseException) -> bool:
    """Whether `exc` is the disk (or SQLite's file) being full: the write's transaction rolled
    back, so the node refuses the request and keeps everything it had."""
    import errno

    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL"
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def take_rows(
    db: sqlite3.Connection, table: str, id_col: str, tag_col: str, ids: Sequence[bytes]
) -> dict[bytes, tuple[str, bytes]]:
    """Delete rows `ids` of a single-use table (nonces, presignatures) in one committed
    transaction and return those that existed: {id: (tag, sealed)}. Nothing read here can be
    read again, even after a crash, whatever the caller computes with it afterwards."""
    out: dict[bytes, tuple[str, bytes]] = {}
    if not ids:
        return out
    with db:
        db.execute("BEGIN IMMEDIATE")
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for rid, tag, sealed in db.execute(
                f"SELECT {id_col}, {tag_col}, sealed FROM {table} WHERE {id_col} IN ({marks})",
                chunk,
            ):
                out[bytes(rid)] = (str(tag), bytes(sealed))
            db.execute(f"DELETE FROM {table} WHERE {id_col} IN ({marks})", chunk)
    return out


class NodeStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        path.chmod(0o600)
        self.before_close: list[Callable[[], None]] = []  # e.g. stop the start-up share scan

    def close(self) -> None:
        """Close the database, after whatever reads it beside the node has stopped."""
        for stop in self.before_close:
            stop()
        self.db.close()

    # -- meta ------------------------------------------------------------------------------------
    def get_meta(self, k: str) -> str | None:
        row = self.db.execute("SELECT v FROM meta WHERE k = ?", (k,)).fetchone()
        return None if row is None else str(row[0])

    def put_meta(self, k: str, v: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (k, v))

    def delete_meta(self, k: str) -> None:
        self.db.execute("DELETE FROM meta WHERE k = ?", (k,))

    # -- keys ------------------------------------------------------------------------------------
    def destroy_key(self, key_id: str, meta_keys: Sequence[str]) -> bool:
        """Delete a key's share (current and prepared), its presignatures and `meta_keys` rows in one durable
        transaction, the freed pages overwritten (secure_delete) and the WAL checkpointed, so
        the sealed share is not left in the file. True if a share was there."""
        self.db.execute("PRAGMA secure_delete=ON")
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                n = self.db.execute("DELETE FROM keys WHERE key_id = ?", (key_id,)).rowcount
                self.db.execute("DELETE FROM pending_keys WHERE key_id = ?", (key_id,))
                if self.db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'presigs'"
                ).fetchone():  # ECDSA presignatures made with the share (node/ecdsa.py)
                    self.db.execute("DELETE FROM presigs WHERE key_id = ?", (key_id,))
                for k in meta_keys:
                    self.db.execute("DELETE FROM meta WHERE k = ?", (k,))
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.db.execute("PRAGMA secure_delete=OFF")
        return n > 0

    def drop_presignatures(self, key_ids: Sequence[str]) -> None:
        """Delete the ECDSA presignatures of `key_ids` (made for a key package now replaced)."""
        if not self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'presigs'"
        ).fetchone():
            return
        with self.db:
            self.db.executemany("DELETE FROM presigs WHERE key_id = ?", [(k,) for k in key_ids])

    def put_keys(self, rows: Iterable[tuple[str, str, str, bytes]]) -> None:
        """(key_id, scheme, public JSON, sealed share) rows, committed in one transaction."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self._insert_keys(rows)

    def _insert_keys(self, rows: Iterable[tuple[str, str, str, bytes]]) -> None:
        """Write key rows inside the caller's transaction."""
        now = time.time()
        self.db.executemany(
            "INSERT OR REPLACE INTO keys (key_id, scheme, public, sealed, created) VALUES (?,?,?,?,?)",
            [(*r, now) for r in rows],
        )

    def get_key(self, key_id: str) -> tuple[str, str, bytes] | None:
        row = self.db.execute(
            "SELECT scheme, public, sealed FROM keys WHERE key_id = ?", (key_id,)
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), bytes(row[2]))

    def key_ids(self) -> list[str]:
        return [str(r[0]) for r in self.db.execute("SELECT key_id FROM keys ORDER BY key_id")]

    def count_keys(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM keys").fetchone()[0])

    # -- refreshed shares prepared but not committed (two-phase refresh) ---------------------------
    def put_pending(self, rows: Iterable[tuple[str, str, str, str, bytes]]) -> None:
        """(key_id, batch, scheme, public JSON, sealed share): one prepared share per key, replacing
        any older preparation (a refresh that never committed)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT OR REPLACE INTO pending_keys (key_id, batch, scheme, public, sealed) "
                "VALUES (?,?,?,?,?)",
                list(rows),
            )

    def get_pending(self, batch: str) -> list[tuple[str, str, str, bytes]]:
        """(key_id, scheme, public JSON, sealed) prepared by refresh `batch`."""
        return [
            (str(k), str(s), str(p), bytes(b))
            for k, s, p, b in self.db.execute(
                "SELECT key_id, scheme, public, sealed FROM pending_keys WHERE batch = ? "
                "ORDER BY key_id",
                (batch,),
            )
        ]

    def count_pending(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM pending_keys").fetchone()[0])

    def promote_pending(self, batch: str, rows: Sequence[tuple[str, str, str, bytes]]) -> None:
        """Commit: the prepared shares of `batch` become the keys' shares (rows re-sealed for the
        keys table), in one transaction with the removal of the preparation."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self._insert_keys(rows)
            self.db.execute("DELETE FROM pending_keys WHERE batch = ?", (batch,))

    def drop_pending(self, key_ids: Sequence[str]) -> None:
        with self.db:
            self.db.executemany(
                "DELETE FROM pending_keys WHERE key_id = ?", [(k,) for k in key_ids]
            )

    # -- nonces ----------------------------------------------------------------------------------
    def put_nonces(self, group: str, rows: Sequence[tuple[bytes, bytes]]) -> None:
        """Store freshly generated (nonce_id, sealed nonces), already marked handed out."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT INTO nonces (nonce_id, grp, handed_out, sealed) VALUES (?, ?, 1, ?)",
                [(nid, group, sealed) for nid, sealed in rows],
            )

    def take_nonces(self, nonce_ids: Sequence[bytes]) -> dict[bytes, tuple[str, bytes]]:
        """Delete the given nonces durably and return those that existed: {id: (group, sealed)}.

        The DELETE is committed (fsync, WAL) before this returns, so whatever the caller computes
        with these nonces afterwards, they can never be read again, even after a crash.
        """
        return take_rows(self.db, "nonces", "nonce_id", "grp", nonce_ids)

    def count_nonces(self) -> dict[str, int]:
        return {
            str(g): int(c)
            for g, c in self.db.execute("SELECT grp, COUNT(*) FROM nonces GROUP BY grp")
        }

    def trim_nonces(self, group: str, keep: int) -> int:
        """Delete the oldest nonces of a group beyond `keep` (always safe: unused nonces)."""
        with self.db:
            cur = self.db.execute(
                "DELETE FROM nonces WHERE grp = ? AND rowid NOT IN "
                "(SELECT rowid FROM nonces WHERE grp = ? ORDER BY rowid DESC LIMIT ?)",
                (group, group, keep),
            )
        return cur.rowcount
