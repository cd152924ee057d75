"""The node-local journal of requests (SQLite, WAL): reserve, mark signed, mark refused, read.

`reserve` checks the velocity limits against this journal's own entries and records the request
in one IMMEDIATE transaction, so concurrent reservations (threads or processes on the same file)
are serialised and can never jointly exceed a limit on this node. See velocity.py for the quorum
protocol built from these journals.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, cast

from tholos.governance.decision import Refuse
from tholos.governance.errors import AlreadySigned, JournalError
from tholos.governance.policy import VelocityLimit
from tholos.governance.velocity import EntryStatus, JournalEntry, check_velocity


class SeenStore(Protocol):
    """What the evaluator asks about a request id: has this node reserved, signed or refused it?"""

    def status(self, request_id: str) -> EntryStatus | None: ...


class Journal(SeenStore, Protocol):
    """A node's journal. Every method is durable before it returns."""

    def reserve(self, entry: JournalEntry, limits: Sequence[VelocityLimit]) -> Refuse | None: ...

    def mark_signed(self, request_id: str) -> None: ...

    def mark_refused(self, request_id: str, reason: str) -> None: ...

    def refuse(self, entry: JournalEntry, reason: str) -> None: ...

    def entries(self, since: int | None = None) -> list[JournalEntry]: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    request_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    wallet TEXT,
    chain TEXT NOT NULL,
    asset TEXT NOT NULL,
    amount TEXT NOT NULL,
    time INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'signed', 'refused')),
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS journal_time ON journal (time);
"""
_COLUMNS = "request_id, key_id, wallet, chain, asset, amount, time, expires_at, status"


def _row(row: sqlite3.Row | tuple[object, ...]) -> JournalEntry:
    rid, key, wallet, chain, asset, amount, time, expires, status = tuple(row)
    return JournalEntry(
        request_id=str(rid),
        key_id=str(key),
        wallet=None if wallet is None else str(wallet),
        chain=str(chain),
        asset=str(asset),
        amount=int(str(amount)),  # stored as text: amounts may exceed 64 bits
        time=int(cast(int, time)),
        expires_at=int(cast(int, expires)),
        status=cast(EntryStatus, status),
    )


def _values(e: JournalEntry) -> tuple[object, ...]:
    """Column values of an entry except status (amount as text: it may exceed 64 bits)."""
    return (e.request_id, e.key_id, e.wallet, e.chain, e.asset, str(e.amount), e.time, e.expires_at)


class SQLiteJournal:
    """Journal in one SQLite file (WAL, synchronous=FULL). Safe across threads and processes."""

    def __init__(self, path: str | Path) -> None:
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

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: the write lock is taken before we read."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _get(self, db: sqlite3.Connection, request_id: str) -> tuple[JournalEntry, str] | None:
        row = db.execute(
            f"SELECT {_COLUMNS}, reason FROM journal WHERE request_id = ?", (request_id,)
        ).fetchone()
        return None if row is None else (_row(row[:-1]), str(row[-1]))

    def reserve(self, entry: JournalEntry, limits: Sequence[VelocityLimit]) -> Refuse | None:
        """Record `entry` as pending if this journal's own entries allow it, else as refused.

        Idempotent for the same intent (returns the first outcome); a different intent under a
        known request id raises JournalError.
        """
        with self._tx() as db:
            return self._reserve(db, entry, limits)

    def reserve_many(
        self, items: Sequence[tuple[JournalEntry, Sequence[VelocityLimit]]]
    ) -> list[Refuse | None]:
        """`reserve` for many entries in ONE transaction (one fsync), in order: each entry is
        checked against the journal including the entries reserved before it in the batch."""
        out: list[Refuse | None] = []
        with self._tx() as db:
            for entry, limits in items:
                out.append(self._reserve(db, entry, limits))
        return out

    def _reserve(
        self, db: sqlite3.Connection, entry: JournalEntry, limits: Sequence[VelocityLimit]
    ) -> Refuse | None:
        window = max((limit.window_seconds for limit in limits), default=0)
        existing = self._get(db, entry.request_id)
        if existing is not None:
            old, reason = existing
            if not old.same_intent(entry):
                raise JournalError(f"request {entry.request_id} reserved with another intent")
            return Refuse("journal", reason) if old.status == "refused" else None
        refusal = None
        if limits:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM journal WHERE status != 'refused' AND chain = ? "
                "AND asset = ? AND time > ?",
                (entry.chain, entry.asset, entry.time - window),
            ).fetchall()
            refusal = check_velocity((_row(r) for r in rows), entry, limits)
        status, reason = ("refused", refusal.reason) if refusal else ("pending", "")
        db.execute(
            f"INSERT INTO journal ({_COLUMNS}, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*_values(entry), status, reason),
        )
        return refusal

    def sign_many(self, request_ids: Sequence[str], entries: Sequence[JournalEntry]) -> list[str]:
        """Mark many requests signed in ONE transaction, before their shares leave the node.

        `request_ids` must be pending here; `entries` (no velocity limit applies to them) are
        recorded and marked signed in the same step. Returns, per request id then per entry, ""
        or why it may not be signed (already signed, refused, unknown); nothing else changes.
        """
        out: list[str] = []
        with self._tx() as db:
            for rid in request_ids:
                cur = db.execute(
                    "UPDATE journal SET status = 'signed' WHERE request_id = ? "
                    "AND status = 'pending'",
                    (rid,),
                )
                if cur.rowcount == 1:
                    out.append("")
                    continue
                found = self._get(db, rid)
                out.append(
                    f"request {rid} was never reserved here"
                    if found is None
                    else f"request {rid} is {found[0].status} here"
                )
            # The write lock is held: read which ids exist (one query per 500), then insert the
            # others in one statement. An id twice in the batch: the second is "signed" already.
            present = self._statuses(db, [e.request_id for e in entries])
            fresh: list[tuple[object, ...]] = []
            for entry in entries:
                status = present.get(entry.request_id)
                if status is not None:
                    out.append(f"request {entry.request_id} is {status} here")
                    continue
                present[entry.request_id] = "signed"
                fresh.append((*_values(entry), "signed", ""))
                out.append("")
            if fresh:
                db.executemany(
                    f"INSERT INTO journal ({_COLUMNS}, reason) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    fresh,
                )
        return out

    @staticmethod
    def _statuses(db: sqlite3.Connection, request_ids: Sequence[str]) -> dict[str, EntryStatus]:
        out: dict[str, EntryStatus] = {}
        for start in range(0, len(request_ids), 500):
            chunk = list(request_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for rid, status in db.execute(
                f"SELECT request_id, status FROM journal WHERE request_id IN ({marks})", chunk
            ):
                out[str(rid)] = cast(EntryStatus, status)
        return out

    def statuses(self, request_ids: Sequence[str]) -> dict[str, EntryStatus]:
        """The status of each known request id, in one query per 500 ids."""
        with self._lock:
            return self._statuses(self._db, request_ids)

    def entries_for(
        self, chain: str, asset: str, key_id: str, wallet: str | None, since: int
    ) -> list[JournalEntry]:
        """Entries that can count against a (chain, asset, key or wallet) limit after `since`."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM journal WHERE chain = ? AND asset = ? AND time > ? "
                "AND (key_id = ? OR (wallet IS NOT NULL AND wallet = ?)) "
                "ORDER BY time, request_id",
                (chain, asset, since, key_id, wallet),
            ).fetchall()
        return [_row(r) for r in rows]

    def mark_signed(self, request_id: str) -> None:
        """pending -> signed, before the node releases its signature share. Once only."""
        with self._tx() as db:
            existing = self._get(db, request_id)
            if existing is None:
                raise JournalError(f"request {request_id} was never reserved here")
            if existing[0].status == "signed":
                raise AlreadySigned(f"request {request_id} was signed already")
            if existing[0].status == "refused":
                raise JournalError(f"request {request_id} was refused here; refusal is final")
            db.execute("UPDATE journal SET status = 'signed' WHERE request_id = ?", (request_id,))

    def mark_refused(self, request_id: str, reason: str) -> None:
        """pending -> refused (final for this node). A signed request stays signed."""
        with self._tx() as db:
            existing = self._get(db, request_id)
            if existing is None:
                raise JournalError(f"request {request_id} was never reserved here")
            if existing[0].status == "signed":
                raise AlreadySigned(f"request {request_id} was signed already")
            db.execute(
                "UPDATE journal SET status = 'refused', reason = ? WHERE request_id = ?",
                (reason, request_id),
            )

    def refuse(self, entry: JournalEntry, reason: str) -> None:
        """Record that this node will never sign `entry`, reserved here or not (a tombstone).

        Used when a request is aborted cluster-wide: once n - t + 1 journals hold it refused it
        stops counting towards velocity (see `merge_quorum`). A signed request stays signed.
        """
        with self._tx() as db:
            existing = self._get(db, entry.request_id)
            if existing is not None:
                if not existing[0].same_intent(entry):
                    raise JournalError(f"request {entry.request_id} recorded with another intent")
                if existing[0].status == "signed":
                    raise AlreadySigned(f"request {entry.request_id} was signed already")
                db.execute(
                    "UPDATE journal SET status = 'refused', reason = ? WHERE request_id = ?",
                    (reason, entry.request_id),
                )
                return
            db.execute(
                f"INSERT INTO journal ({_COLUMNS}, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*_values(entry), "refused", reason),
            )

    def expire(self, now: int) -> int:
        """Mark pending requests whose expiry has passed refused; return how many."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE journal SET status = 'refused', reason = 'expired' "
                "WHERE status = 'pending' AND expires_at <= ?",
                (now,),
            )
            return cur.rowcount

    def status(self, request_id: str) -> EntryStatus | None:
        with self._lock:
            found = self._get(self._db, request_id)
        return None if found is None else found[0].status

    def entries(self, since: int | None = None) -> list[JournalEntry]:
        """Entries with time > since (all if None), oldest first: a node's journal snapshot."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM journal WHERE time > ? ORDER BY time, request_id",
                (-1 if since is None else since,),
            ).fetchall()
        return [_row(r) for r in rows]
