"""Deposit monitoring: the wallets' addresses watched through the chain connectors, every
deposit recorded once with its confirmations (native coins, and on Solana SPL tokens into the
address's token accounts, asset `spl:<mint>`), and events for webhooks (`deposit.seen` when
first found, `deposit.confirmed` once it has the connector's required confirmations).

Connectors are untrusted like the gateway: they can hide or delay a deposit, never make a node
sign. Each poll scans only blocks after the last one scanned per wallet; confirmations of known
deposits are recomputed from the head. Chain reorganisations are not followed (a deposit once
seen stays recorded).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from tholos.chains.base import ChainError, WalletRef
from tholos.chains.registry import chain_for
from tholos.connectors.base import Connector, TokenBalances
from tholos.gateway.webhooks import Webhooks

SCHEMA = """
CREATE TABLE IF NOT EXISTS deposits (
    wallet_id TEXT NOT NULL, txid TEXT NOT NULL, address TEXT NOT NULL, asset TEXT NOT NULL,
    amount TEXT NOT NULL, block INTEGER NOT NULL, confirmations INTEGER NOT NULL,
    confirmed INTEGER NOT NULL, first_seen REAL NOT NULL,
    PRIMARY KEY (wallet_id, txid, address, asset)
);
CREATE TABLE IF NOT EXISTS watch_heights (wallet_id TEXT PRIMARY KEY, height INTEGER NOT NULL);
"""
NATIVE = {"bitcoin": "BTC", "ethereum": "ETH", "solana": "SOL"}
DEFAULT_ADDRESSES = 20


def watched_addresses(ref: WalletRef, count: int = DEFAULT_ADDRESSES) -> list[str]:
    """Receive addresses m/0/0 .. m/0/(count-1) (solana: its one address)."""
    chain = chain_for(ref.chain)
    if chain is None:
        raise ChainError(f"no chain package for {ref.chain!r}", field="chain")
    n = 1 if ref.chain == "solana" else count
    return [chain.address(ref, i).address for i in range(n)]


class DepositWatcher:
    """Deposits to the wallets' addresses, from `connectors` by chain, into `db`."""

    def __init__(
        self,
        db: sqlite3.Connection,
        connectors: Mapping[str, Connector],
        webhooks: Webhooks,
        addresses_per_wallet: int = DEFAULT_ADDRESSES,
    ) -> None:
        self.db = db
        self.connectors = dict(connectors)
        self.webhooks = webhooks
        self.addresses_per_wallet = addresses_per_wallet
        self.db.executescript(SCHEMA)

    def required(self, connector: Connector) -> int:
        """Confirmations after which a deposit on this connector's chain is `confirmed`."""
        return int(getattr(connector, "required_confirmations", 1))

    def poll(self, wallets: Sequence[WalletRef], now: float) -> int:
        """Scan new blocks for every wallet with a connector; returns the events emitted."""
        events = 0
        for ref in wallets:
            connector = self.connectors.get(ref.chain)
            if connector is None:
                continue
            addresses = watched_addresses(ref, self.addresses_per_wallet)
            head = connector.height()
            row = self.db.execute(
                "SELECT height FROM watch_heights WHERE wallet_id = ?", (ref.wallet_id,)
            ).fetchone()
            since = -1 if row is None else int(row[0])
            found = connector.deposits(addresses, since) if head > since else []
            with self.db:
                for d in found:
                    new = self.db.execute(
                        "INSERT OR IGNORE INTO deposits VALUES (?,?,?,?,?,?,?,0,?)",
                        (ref.wallet_id, d.txid, d.address, d.asset, str(d.amount), d.block,
                         head - d.block + 1, now),
                    ).rowcount  # fmt: skip
                    if new:
                        events += self.webhooks.emit(
                            "deposit.seen",
                            self._event(ref, d.txid, d.address, d.asset, d.amount, d.block, head),
                            f"deposit.seen:{ref.wallet_id}:{d.txid}:{d.address}:{d.asset}",
                            now,
                        )
                self.db.execute(
                    "INSERT INTO watch_heights VALUES (?, ?) ON CONFLICT (wallet_id)"
                    " DO UPDATE SET height = excluded.height",
                    (ref.wallet_id, head),
                )
                # every known deposit's depth, confirmed or not (the docstring's promise)
                self.db.execute(
                    "UPDATE deposits SET confirmations = ? - block + 1 WHERE wallet_id = ?",
                    (head, ref.wallet_id),
                )
                pending = self.db.execute(
                    "SELECT txid, address, asset, amount, block FROM deposits"
                    " WHERE wallet_id = ? AND confirmed = 0",
                    (ref.wallet_id,),
                ).fetchall()
                for txid, address, asset, amount, block in pending:
                    if head - int(block) + 1 >= self.required(connector):
                        self.db.execute(
                            "UPDATE deposits SET confirmed = 1"
                            " WHERE wallet_id = ? AND txid = ? AND address = ? AND asset = ?",
                            (ref.wallet_id, txid, address, asset),
                        )
                        events += self.webhooks.emit(
                            "deposit.confirmed",
                            self._event(ref, txid, address, asset, int(amount), int(block), head),
                            f"deposit.confirmed:{ref.wallet_id}:{txid}:{address}:{asset}",
                            now,
                        )
        return events

    @staticmethod
    def _event(
        ref: WalletRef, txid: str, address: str, asset: str, amount: int, block: int, head: int
    ) -> dict[str, Any]:
        mint = {"mint": asset.removeprefix("spl:")} if asset.startswith("spl:") else {}
        return {
            **mint,
            "wallet_id": ref.wallet_id,
            "chain": ref.chain,
            "network": ref.network,
            "txid": txid,
            "address": address,
            "asset": asset,
            "amount": str(amount),  # a string: wei exceed JSON's safe integers
            "block": block,
            "confirmations": head - block + 1,
        }

    def deposits(self, wallet_id: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT txid, address, asset, amount, block, confirmations, confirmed FROM deposits"
            " WHERE wallet_id = ? ORDER BY block DESC, txid LIMIT ?",
            (wallet_id, limit),
        ).fetchall()
        keys = ("txid", "address", "asset", "amount", "block", "confirmations", "confirmed")
        return [{**dict(zip(keys, r, strict=True)), "confirmed": bool(r[6])} for r in rows]

    def balances(self, ref: WalletRef) -> dict[str, Any]:
        """The wallet's balance per asset over its watched addresses, read now from its connector:
        the native coin first, then tokens where the connector lists them (Solana SPL)."""
        connector = self.connectors.get(ref.chain)
        if connector is None:
            raise LookupError(f"no connector for {ref.chain}")
        addresses = watched_addresses(ref, self.addresses_per_wallet)
        height = connector.height()
        per_address = {a: connector.balance(a) for a in addresses}
        tokens: dict[str, int] = {}
        if isinstance(connector, TokenBalances):
            for a in addresses:
                for asset, amount in connector.token_balances(a).items():
                    tokens[asset] = tokens.get(asset, 0) + amount
        native = {"asset": NATIVE[ref.chain], "amount": str(sum(per_address.values()))}
        return {
            "wallet_id": ref.wallet_id,
            "height": height,
            "balances": [native]
            + [{"asset": k, "amount": str(v)} for k, v in sorted(tokens.items())],
            "addresses": {a: str(v) for a, v in per_address.items() if v},
        }
