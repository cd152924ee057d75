"""The gateway's SQL connection: SQLite (one file, the embedded default) or PostgreSQL (a server
that several gateways share, for high availability), behind one small API.

Stores write portable SQL with `?` placeholders (translated to psycopg's `%s`); schema DDL says
REAL and BLOB (DOUBLE PRECISION and BYTEA on PostgreSQL) and is applied by versioned migrations
(gateway/schema.py). A PostgreSQL connection that breaks (the server restarts, the network
drops) raises `StoreUnavailable` (503 `store_unavailable`) and is opened again on the next call,
so a request fails cleanly and its retry succeeds once the server is back."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from tholos.gateway.errors import GatewayError

Row = tuple[Any, ...]


class StoreUnavailable(GatewayError):
    """The gateway's database cannot be reached now; nothing was changed by this call."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            503, "store_unavailable", f"the gateway's database is unavailable: {reason}"
        )


class Rows:
    """The rows a statement returned (read in full) and how many rows it changed."""

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Row | None:
        return self.rows[0] if self.rows else None

    def one(self) -> Row:
        """The first row of a statement that always returns one (COUNT, MAX)."""
        if not self.rows:
            raise LookupError("the statement returned no row")
        return self.rows[0]

    def fetchall(self) -> list[Row]:
        return self.rows

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)


class Database(Protocol):
    """What the gateway's stores use. `shared`: other gateways write the same database, so no
    store may trust a cache of rows it did not just read."""

    dialect: str
    shared: bool

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Rows: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def transaction(self) -> Any: ...

    def __enter__(self) -> Database: ...

    def __exit__(self, *exc: object) -> None: ...

    def script(self, ddl: str) -> None: ...

    def advisory_lock(self) -> None: ...

    def close(self) -> None: ...


class _Nesting:
    """One lock per connection and a per-thread depth: a transaction inside a transaction joins
    the outer one (stores call each other)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.local = threading.local()

    def depth(self) -> int:
        return int(getattr(self.local, "depth", 0))

    def set_depth(self, d: int) -> None:
        self.local.depth = d

    def contexts(self) -> list[Any]:
        """The open `with db:` blocks of this thread, innermost last."""
        stack: list[Any] | None = getattr(self.local, "contexts", None)
        if stack is None:
            stack = self.local.contexts = []
        return stack

    @contextmanager
    def joined(self, outermost: Callable[[], AbstractContextManager[Any]]) -> Iterator[None]:
        """This thread's outermost transaction runs in `outermost()`; inner ones join it."""
        with self.lock:
            depth = self.depth()
            self.set_depth(depth + 1)
            try:
                if depth:
                    yield
                else:
                    with outermost():
                        yield
            finally:
                self.set_depth(depth)

    def enter(self, ctx: AbstractContextManager[Any]) -> Any:
        """`with db:` — a transaction kept open until the matching `leave`."""
        self.contexts().append(ctx)
        return ctx.__enter__()

    def leave(self, *exc: Any) -> None:
        self.contexts().pop().__exit__(*exc)


class SQLiteDatabase:
    """One SQLite file in WAL mode, autocommit outside `transaction()`, which is BEGIN IMMEDIATE
    (the write lock is taken before the first read, so read-modify-write is serialised)."""

    dialect = "sqlite"
    shared = False

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self._n = _Nesting()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Rows:
        with self._n.lock:
            cur = self.conn.execute(sql, tuple(args))
            return Rows(cur.fetchall(), cur.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._n.lock:
            self.conn.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[SQLiteDatabase]:
        with self._n.joined(self._immediate):
            yield self

    @contextmanager
    def _immediate(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def __enter__(self) -> SQLiteDatabase:
        enter: SQLiteDatabase = self._n.enter(self.transaction())
        return enter

    def __exit__(self, *exc: Any) -> None:
        self._n.leave(*exc)

    def script(self, ddl: str) -> None:
        """Run DDL statements (inside the caller's transaction)."""
        for stmt in statements(ddl):
            self.execute(stmt)

    def advisory_lock(self) -> None:
        """BEGIN IMMEDIATE already holds the database's write lock."""

    def close(self) -> None:
        with self._n.lock:
            self.conn.close()


_PLACEHOLDER = re.compile(r"\?")
_DDL_TYPES = ((re.compile(r"\bREAL\b"), "DOUBLE PRECISION"), (re.compile(r"\bBLOB\b"), "BYTEA"))


def to_pyformat(sql: str) -> str:
    """`?` placeholders to psycopg's `%s` (a literal `%` doubled). Our SQL has no `?` inside
    string literals (values are always parameters)."""
    return _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))


def postgres_ddl(ddl: str) -> str:
    """SQLite column types to PostgreSQL's: REAL is 4 bytes there (timestamps need 8)."""
    for pattern, name in _DDL_TYPES:
        ddl = pattern.sub(name, ddl)
    return ddl


def statements(ddl: str) -> list[str]:
    return [s.strip() for s in ddl.split(";") if s.strip()]


class PostgresDatabase:
    """One psycopg 3 connection (autocommit; `transaction()` is a real transaction), reopened
    after it breaks. Every failure to reach the server is `StoreUnavailable`."""

    dialect = "postgresql"
    shared = True

    def __init__(self, url: str, connect_timeout: float = 5.0) -> None:
        import psycopg

        self._psycopg = psycopg
        self.url = url
        self.connect_timeout = connect_timeout
        self._conn: Any = None
        self._n = _Nesting()
        self._broken = False
        with self._n.lock:
            self._connection()

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed or self._broken:
            self._drop()
            try:
                self._conn = self._psycopg.connect(
                    self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))
                )
            except self._psycopg.Error as exc:
                raise StoreUnavailable(_reason(exc)) from None
            self._broken = False
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                self._conn.close()
        self._conn = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Connection-level errors -> StoreUnavailable and a reconnect on the next call."""
        errors = self._psycopg
        try:
            yield
        except (errors.OperationalError, errors.InterfaceError) as exc:
            self._broken = True
            raise StoreUnavailable(_reason(exc)) from None

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Rows:
        with self._n.lock, self._errors():
            cur = self._connection().execute(to_pyformat(sql) if args else sql, tuple(args) or None)
            rows = [tuple(r) for r in cur.fetchall()] if cur.description is not None else []
            return Rows(rows, cur.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = [tuple(r) for r in rows]
        if not batch:
            return
        with self._n.lock, self._errors(), self._connection().cursor() as cur:
            cur.executemany(to_pyformat(sql), batch)

    @contextmanager
    def transaction(self) -> Iterator[PostgresDatabase]:
        with self._n.joined(self._outermost):
            yield self

    @contextmanager
    def _outermost(self) -> Iterator[None]:
        with self._errors(), self._connection().transaction():
            yield

    def __enter__(self) -> PostgresDatabase:
        enter: PostgresDatabase = self._n.enter(self.transaction())
        return enter

    def __exit__(self, *exc: Any) -> None:
        self._n.leave(*exc)

    def script(self, ddl: str) -> None:
        for stmt in statements(postgres_ddl(ddl)):
            self.execute(stmt)

    def advisory_lock(self) -> None:
        """Serialise schema migrations of gateways starting at once (held to the commit)."""
        self.execute("SELECT pg_advisory_xact_lock(?)", (0x7468_6F6C,))  # "thol"

    def close(self) -> None:
        with self._n.lock:
            self._drop()


def write_conflicts() -> tuple[type[BaseException], ...]:
    """Errors of a write that lost a race (a unique index taken by another writer, SQLite busy):
    the caller's transaction was rolled back and it may try again."""
    found: list[type[BaseException]] = [sqlite3.IntegrityError, sqlite3.OperationalError]
    try:
        import psycopg
    except ImportError:  # the postgresql extra is not installed: no PostgreSQL store either
        return tuple(found)
    return (*found, psycopg.errors.IntegrityError, psycopg.errors.SerializationFailure)


def _reason(exc: BaseException) -> str:
    """A short reason without the connection string (it may carry a password)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"postgres(ql)?://\S+", "postgresql://…", text)[:200]


def is_url(store: str | Path) -> bool:
    return isinstance(store, str) and store.startswith(("postgresql://", "postgres://"))


def open_database(store: str | Path) -> SQLiteDatabase | PostgresDatabase:
    """`store` a `postgresql://…` URL or the path of a SQLite file."""
    if is_url(store):
        return PostgresDatabase(str(store))
    return SQLiteDatabase(Path(store))
