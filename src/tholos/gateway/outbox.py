"""The gateway's durable outbox: every signed chain transaction, from the moment its signature is
recorded (in the same database transaction, `enqueue`) until the chain has confirmed it.

A row is keyed by the transaction's hash (Bitcoin txid, Ethereum hash, Solana signature), so a
transaction enters once however often its request is saved. States:

- `queued`: signed, not yet accepted by a chain backend;
- `sent`: accepted (or already known there), waiting for confirmations;
- `confirmed`: the required confirmations reached; still watched until `settled` for a reorg;
- `replaced`: an Ethereum transaction of the same sender and nonce, signed later (a fee bump,
  approved like any other request), confirmed instead;
- `dropped`: a same-nonce transaction signed earlier confirmed instead of this one;
- `flagged`: the chain refused it for good, or a reorg took it out and it cannot be sent again:
  an operator must look (`last_error` says why).

Broadcasters claim due rows with a lease (a conditional UPDATE), so concurrent broadcasters, in
one process or several, never work on the same row at once; the SQL is portable (no SQLite-only
statements) for the PostgreSQL store."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from tholos.gateway.database import Database

STATES = ("queued", "sent", "confirmed", "replaced", "dropped", "flagged")
FINAL = frozenset({"replaced", "dropped", "flagged"})
CHAINS = frozenset({"bitcoin", "ethereum", "solana"})
_COLUMNS = (
    "tx_hash, chain, network, raw, encoding, request_id, sender, nonce, state, attempts, "
    "next_attempt, confirmations, block, settled, lease_until, last_error, created, updated"
)


@dataclass(frozen=True)
class OutboxEntry:
    tx_hash: str
    chain: str
    network: str
    raw: str  # as the request's result carries it: hex (bitcoin, ethereum) or base64 (solana)
    encoding: str
    request_id: str
    sender: str  # ethereum: the `from` address; "" elsewhere
    nonce: int | None  # ethereum only
    state: str
    attempts: int  # tries: broadcasts, and reads of the chain that failed
    next_attempt: float
    confirmations: int
    block: int | None
    settled: bool  # deep enough: no longer watched
    lease_until: float
    last_error: str
    created: float
    updated: float

    def raw_bytes(self) -> bytes:
        import base64

        return base64.b64decode(self.raw) if self.encoding == "base64" else bytes.fromhex(self.raw)

    def summary(self, *, with_raw: bool = False) -> dict[str, Any]:
        d = asdict(self)
        del d["lease_until"]
        if not with_raw:
            del d["raw"]
        return d


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    r = list(row)
    r[13] = bool(r[13])
    return OutboxEntry(*r)


def signed_transaction(
    request_id: str,
    chain: str,
    network: str,
    transaction: dict[str, Any],
    details: dict[str, Any],
) -> tuple[Any, ...] | None:
    """The outbox row of a request's signed result, or None if it is nothing to broadcast (a
    signed message or typed data has no transaction hash)."""
    if chain not in CHAINS or not transaction.get("raw") or not transaction.get("txid"):
        return None
    sender = str(transaction.get("from", details.get("from", ""))) if chain == "ethereum" else ""
    nonce = int(details["nonce"]) if chain == "ethereum" and "nonce" in details else None
    raw = str(transaction["raw"]).removeprefix("0x")
    now = time.time()
    return (
        str(transaction["txid"]),
        chain,
        network,
        raw,
        str(transaction.get("encoding", "hex")),
        request_id,
        sender,
        nonce,
        "queued",
        0,
        now,
        0,
        None,
        0,
        0.0,
        "",
        now,
        now,
    )


class Outbox:
    """The `outbox` table on the gateway store's connection."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- entering ------------------------------------------------------------------------------
    @staticmethod
    def enqueue(db: Database, rows: Iterable[tuple[Any, ...]]) -> None:
        """Insert rows from `signed_transaction` inside the caller's open transaction; a hash
        already there is left as it is (a request saved again enqueues nothing new)."""
        db.executemany(
            f"INSERT INTO outbox ({_COLUMNS}) VALUES ({','.join('?' * 18)}) "
            "ON CONFLICT (tx_hash) DO NOTHING",
            list(rows),
        )

    def add(self, row: tuple[Any, ...]) -> None:
        """Enqueue one row in its own transaction (tests, imports)."""
        with self.db:
            self.enqueue(self.db, [row])

    # -- reading -------------------------------------------------------------------------------
    def get(self, tx_hash: str) -> OutboxEntry | None:
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE tx_hash = ?", (tx_hash,)
        ).fetchone()
        return None if row is None else _entry(row)

    def page(
        self,
        limit: int = 100,
        offset: int = 0,
        state: str | None = None,
        chain: str | None = None,
        request_id: str | None = None,
    ) -> tuple[list[OutboxEntry], int]:
        """Entries matching every filter given, newest first, and how many match in all."""
        if not (1 <= limit <= 1000 and 0 <= offset < 2**62):
            raise ValueError("limit must be in [1, 1000] and offset in [0, 2**62)")
        if state is not None and state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        terms, args = [], []
        for column, value in (("state", state), ("chain", chain), ("request_id", request_id)):
            if value is not None:
                terms.append(f"{column} = ?")
                args.append(value)
        where = (" WHERE " + " AND ".join(terms)) if terms else ""
        total = int(self.db.execute("SELECT COUNT(*) FROM outbox" + where, args).one()[0])
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM outbox{where} ORDER BY created DESC, tx_hash LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ).fetchall()
        return [_entry(r) for r in rows], total

    def siblings(self, entry: OutboxEntry) -> list[OutboxEntry]:
        """Other Ethereum transactions of the same sender and nonce (replacements, or what this
        one replaces)."""
        if entry.nonce is None:
            return []
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE chain = ? AND network = ? AND sender = ? "
            "AND nonce = ? AND tx_hash != ?",
            (entry.chain, entry.network, entry.sender, entry.nonce, entry.tx_hash),
        ).fetchall()
        return [_entry(r) for r in rows]

    # -- broadcasting --------------------------------------------------------------------------
    def claim(
        self,
        now: float,
        lease: float,
        limit: int = 50,
        chains: Iterable[tuple[str, str]] | None = None,
    ) -> list[OutboxEntry]:
        """Due rows (not settled, next attempt passed, no live lease; of the (chain, network)
        pairs in `chains` if given) now leased to the caller until `now + lease`; a row another
        broadcaster claimed first is skipped."""
        pairs = None if chains is None else sorted(set(chains))
        if pairs == []:
            return []
        where, args = "", []
        if pairs:
            where = " AND (" + " OR ".join("(chain = ? AND network = ?)" for _ in pairs) + ")"
            args = [x for pair in pairs for x in pair]
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE settled = 0 AND next_attempt <= ? "
            f"AND lease_until <= ?{where} ORDER BY next_attempt LIMIT ?",
            (now, now, *args, limit),
        ).fetchall()
        claimed = []
        for row in rows:
            entry = _entry(row)
            with self.db:
                cur = self.db.execute(
                    "UPDATE outbox SET lease_until = ? WHERE tx_hash = ? AND lease_until <= ? "
                    "AND settled = 0",
                    (now + lease, entry.tx_hash, now),
                )
            if cur.rowcount == 1:
                claimed.append(entry)
        return claimed

    def update(self, tx_hash: str, **fields: Any) -> None:
        """Set columns of one row and release its lease."""
        bad = (set(fields) - set(_COLUMNS.split(", "))) | ({"tx_hash", "created"} & set(fields))
        if bad:
            raise ValueError(f"not an updatable outbox column: {sorted(bad)}")
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        fields = {**fields, "lease_until": 0.0, "updated": time.time()}
        if "settled" in fields:
            fields["settled"] = int(bool(fields["settled"]))
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.db:
            self.db.execute(
                f"UPDATE outbox SET {sets} WHERE tx_hash = ?", [*fields.values(), tx_hash]
            )
