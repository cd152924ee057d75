"""Gateway state: key records (public data only), signing/keygen requests, wallets
(gateway/wallet_store.py), the chain outbox (gateway/outbox.py) and Ethereum nonces
(gateway/nonces.py), in SQLite or PostgreSQL (gateway/database.py, tables in schema.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tholos.gateway.database import Database, open_database
from tholos.gateway.nonces import NonceBook
from tholos.gateway.outbox import Outbox
from tholos.gateway.schema import migrate
from tholos.gateway.wallet_store import WalletStore


@dataclass(frozen=True)
class KeyRow:
    key_id: str
    scheme: str
    label: str | None
    public_key: str
    package: dict[str, Any]
    meta: dict[str, Any]
    created: float

    def summary(self) -> dict[str, Any]:
        extra = {"dkg_excluded": self.meta["dkg_excluded"]} if self.meta.get("dkg_excluded") else {}
        return {
            **extra,
            "key_id": self.key_id,
            "scheme": self.scheme,
            "public_key": self.public_key,
            "label": self.label,
            "imported": bool(self.meta.get("imported", False)),
            "threshold": self.package["threshold"],
            "participants": sorted(int(i) for i in self.package["verifying_shares"]),
            "created": self.created,
            "disabled": bool(self.meta.get("disabled", False)),
            "tags": list(self.meta.get("tags", [])),
        }


@dataclass(frozen=True)
class KeyFilter:
    """Keys listed must match every field that is not None (label and public key exactly)."""

    scheme: str | None = None
    label: str | None = None
    public_key: str | None = None
    created_after: float | None = None
    created_before: float | None = None

    def where(self) -> tuple[str, list[Any]]:
        terms, args = [], []
        for column, op, value in (
            ("scheme", "=", self.scheme),
            ("label", "=", self.label),
            ("public_key", "=", self.public_key),
            ("created", ">", self.created_after),
            ("created", "<", self.created_before),
        ):
            if value is not None:
                terms.append(f"{column} {op} ?")
                args.append(value)
        return (" WHERE " + " AND ".join(terms)) if terms else "", args


@dataclass(frozen=True)
class KeyPage:
    rows: list[KeyRow]
    total: int  # keys matching the filter, on every page


_KEY_UPSERT = (
    "INSERT INTO keys VALUES (?,?,?,?,?,?,?) ON CONFLICT (key_id) DO UPDATE SET "
    "scheme = excluded.scheme, label = excluded.label, public_key = excluded.public_key, "
    "package = excluded.package, meta = excluded.meta, created = excluded.created"
)
_REQUEST_UPSERT = (
    "INSERT INTO requests VALUES (?,?,?,?,?,?) ON CONFLICT (request_id) DO UPDATE SET "
    "kind = excluded.kind, key_id = excluded.key_id, status = excluded.status, "
    "detail = excluded.detail, created = excluded.created"
)


class GatewayStore:
    """`store`: a SQLite file, a `postgresql://…` URL or an open database. On a shared database
    (PostgreSQL, several gateways) key rows are not cached: another gateway may change them."""

    def __init__(self, store: Path | str | Database) -> None:
        self.db: Database = open_database(store) if isinstance(store, (str, Path)) else store
        migrate(self.db)
        self._cache: dict[str, KeyRow] = {}
        self._caching = not self.db.shared
        self.wallets = WalletStore(self.db)
        self.outbox = Outbox(self.db)  # signed chain transactions until confirmed
        self.nonces = NonceBook(self.db)  # ethereum nonces per (chain id, address)

    def close(self) -> None:
        self.db.close()

    def put_keys(self, rows: Iterable[KeyRow]) -> None:
        rows = list(rows)
        with self.db.transaction():
            self.db.executemany(
                _KEY_UPSERT,
                [
                    (
                        r.key_id,
                        r.scheme,
                        r.label,
                        r.public_key,
                        json.dumps(r.package),
                        json.dumps(r.meta),
                        r.created,
                    )
                    for r in rows
                ],
            )
        if self._caching:
            for r in rows:
                self._cache[r.key_id] = r

    def delete_key(self, key_id: str) -> None:
        """Forget a destroyed key (its public record; the gateway never held a share)."""
        with self.db:
            self.db.execute("DELETE FROM keys WHERE key_id = ?", (key_id,))
        self._cache.pop(key_id, None)

    def get_key(self, key_id: str) -> KeyRow | None:
        r = self._cache.get(key_id)
        if r is not None:
            return r
        row = self.db.execute("SELECT * FROM keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            return None
        r = KeyRow(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]), row[6])
        if self._caching:
            self._cache[key_id] = r
        return r

    def list_keys(self, limit: int = 1000, offset: int = 0) -> list[KeyRow]:
        return self.page_keys(limit, offset).rows

    def page_keys(self, limit: int, offset: int = 0, where: KeyFilter | None = None) -> KeyPage:
        """One page, oldest first; `limit` and `offset` are bounded by the caller (the API)."""
        if not (1 <= limit <= 10_000 and 0 <= offset < 2**62):
            raise ValueError("limit must be in [1, 10000] and offset in [0, 2**62)")
        sql, args = (where or KeyFilter()).where()
        total = int(self.db.execute("SELECT COUNT(*) FROM keys" + sql, args).one()[0])
        rows = self.db.execute(
            "SELECT * FROM keys" + sql + " ORDER BY created, key_id LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ).fetchall()
        return KeyPage(
            [
                KeyRow(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), r[6])
                for r in rows
            ],
            total,
        )

    def count_keys(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM keys").one()[0])

    def record_requests(
        self, rows: Iterable[tuple[str, str, str | None, str, dict[str, Any]]]
    ) -> None:
        now = time.time()
        with self.db.transaction():
            self.db.executemany(
                _REQUEST_UPSERT,
                [
                    (rid, kind, key, status, json.dumps(detail), now)
                    for rid, kind, key, status, detail in rows
                ],
            )

    def get_request(self, request_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT * FROM requests WHERE request_id = ?", (request_id,)
        ).fetchone()
        if row is None:
            return None
        return {
            "request_id": row[0],
            "kind": row[1],
            "key_id": row[2],
            "status": row[3],
            "detail": json.loads(row[4]),
            "created": row[5],
        }
