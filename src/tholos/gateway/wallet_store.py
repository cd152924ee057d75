"""The gateway's `wallets` table: a wallet is a threshold key seen as one chain's account
(chain, network, address type). Addresses are derived on demand, never stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tholos.gateway.database import Database


@dataclass(frozen=True)
class WalletRow:
    wallet_id: str
    key_id: str
    chain: str
    network: str  # bitcoin name, ethereum chain id in decimal, solana cluster name
    address_type: str
    created_at: float
    label: str | None

    def summary(self) -> dict[str, Any]:
        return {
            "wallet_id": self.wallet_id,
            "key_id": self.key_id,
            "chain": self.chain,
            "network": self.network,
            "address_type": self.address_type,
            "label": self.label,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class WalletPage:
    rows: list[WalletRow]
    total: int  # wallets matching the filter, on every page


class WalletStore:
    """Wallet rows in the gateway's database (the connection is the gateway store's)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, row: WalletRow) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO wallets VALUES (?,?,?,?,?,?,?)",
                (
                    row.wallet_id,
                    row.key_id,
                    row.chain,
                    row.network,
                    row.address_type,
                    row.created_at,
                    row.label,
                ),
            )

    def get(self, wallet_id: str) -> WalletRow | None:
        r = self.db.execute("SELECT * FROM wallets WHERE wallet_id = ?", (wallet_id,)).fetchone()
        return None if r is None else WalletRow(*r)

    def page(
        self, limit: int, offset: int = 0, chain: str | None = None, key_id: str | None = None
    ) -> WalletPage:
        """One page, oldest first; `limit` and `offset` are bounded by the caller (the API)."""
        if not (1 <= limit <= 10_000 and 0 <= offset < 2**62):
            raise ValueError("limit must be in [1, 10000] and offset in [0, 2**62)")
        terms, args = [], []
        for column, value in (("chain", chain), ("key_id", key_id)):
            if value is not None:
                terms.append(f"{column} = ?")
                args.append(value)
        where = (" WHERE " + " AND ".join(terms)) if terms else ""
        total = int(self.db.execute("SELECT COUNT(*) FROM wallets" + where, args).one()[0])
        rows = self.db.execute(
            "SELECT * FROM wallets" + where + " ORDER BY created_at, wallet_id LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ).fetchall()
        return WalletPage([WalletRow(*r) for r in rows], total)

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM wallets").one()[0])
