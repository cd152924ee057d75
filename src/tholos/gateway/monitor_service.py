"""Deposit monitoring as a gateway background thread, when the gateway's config has a `monitor`
section: {"ethereum_rpc": URL, "bitcoin_rpc": URL, "bitcoin_cookie": PATH,
"bitcoin_scan_from": HEIGHT, "solana_rpc": URL,
"confirmations": N, "interval": seconds, "webhook_key": PATH} (at least one chain's URL;
`webhook_key`, the key file that signs webhook deliveries, defaults to `webhook.key` beside the
gateway's database, see gateway/webhook_key.py). The routes and the
thread use separate connections to one `monitor.db` beside the gateway's database; the thread
reads wallets from its own connection to the gateway store (the event loop's is not shared)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tholos.connectors.base import Connector, ConnectorError
from tholos.connectors.bitcoin_core import BitcoinCore
from tholos.connectors.ethereum import EthereumRpc
from tholos.connectors.solana_rpc import SolanaRpc
from tholos.gateway.deposit_watch import DepositWatcher
from tholos.gateway.errors import GatewayError
from tholos.gateway.monitoring_api import Monitor, poll_once
from tholos.gateway.store import GatewayStore, KeyRow
from tholos.gateway.webhook_key import KEY_FILE, WebhookKey, open_key
from tholos.gateway.webhooks import Webhooks

log = logging.getLogger("tholos.monitor")


@dataclass(frozen=True)
class MonitorSettings:
    ethereum_rpc: str = ""
    confirmations: int = 1
    interval: float = 5.0
    bitcoin_rpc: str = ""
    solana_rpc: str = ""
    bitcoin_cookie: Path | None = None
    bitcoin_scan_from: int = 0  # first block read for deposits (the wallets' creation height)
    webhook_key: Path | None = None  # None: webhook.key beside the gateway's database

    @classmethod
    def from_config(cls, d: Mapping[str, Any], base: Path | None = None) -> MonitorSettings:
        """The `monitor` section; relative paths are relative to `base` (the config's folder)."""
        chains = {"ethereum_rpc": "Ethereum", "bitcoin_rpc": "Bitcoin Core", "solana_rpc": "Solana"}
        unknown = (
            set(d)
            - set(chains)
            - {"bitcoin_cookie", "bitcoin_scan_from", "confirmations", "interval", "webhook_key"}
        )
        if unknown:
            raise ValueError(f"monitor: unknown setting(s) {sorted(unknown)}")
        for key, node in chains.items():
            url = d.get(key, "")
            if not isinstance(url, str) or (key in d and not url):
                raise ValueError(f"monitor.{key}: the JSON-RPC URL of a {node} node")
        if not any(d.get(key) for key in chains):
            raise ValueError("monitor: give ethereum_rpc, bitcoin_rpc or solana_rpc (a node's URL)")
        cookie = d.get("bitcoin_cookie")
        if cookie is not None and not isinstance(cookie, str):
            raise ValueError("monitor.bitcoin_cookie: the path of bitcoind's .cookie file")
        key_file = d.get("webhook_key")
        if key_file is not None and (not isinstance(key_file, str) or not key_file):
            raise ValueError("monitor.webhook_key: the path of the webhook signing key file")
        s = cls(
            d.get("ethereum_rpc", ""),
            int(d.get("confirmations", 1)),
            float(d.get("interval", 5.0)),
            d.get("bitcoin_rpc", ""),
            d.get("solana_rpc", ""),
            None if cookie is None else Path(cookie),
            int(d.get("bitcoin_scan_from", 0)),
            None if key_file is None else (base or Path()) / key_file,
        )
        if s.confirmations < 1 or s.interval <= 0:
            raise ValueError("monitor: confirmations at least 1, interval above 0")
        return s

    def connectors(self) -> dict[str, Connector]:
        """One connector per chain configured (nothing is asked of the nodes yet)."""
        n = self.confirmations
        out: dict[str, Connector] = {}
        if self.ethereum_rpc:
            out["ethereum"] = EthereumRpc(self.ethereum_rpc, confirmations=n)
        if self.bitcoin_rpc:
            out["bitcoin"] = BitcoinCore(
                self.bitcoin_rpc,
                cookie=self.bitcoin_cookie,
                confirmations=n,
                scan_from=self.bitcoin_scan_from,
            )
        if self.solana_rpc:
            out["solana"] = SolanaRpc(self.solana_rpc, confirmations=n)
        return out


def _open(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
    db.execute("PRAGMA journal_mode=WAL")
    return db


def _monitor(path: Path, connectors: Mapping[str, Connector], key: WebhookKey) -> Monitor:
    hooks = Webhooks(_open(path), key=key)
    return Monitor(DepositWatcher(hooks.db, connectors, hooks), hooks)


class _Wallets:
    """What `poll_once` reads of a gateway (wallets and their keys), over its own store."""

    def __init__(self, store: GatewayStore) -> None:
        self.store = store

    def key(self, key_id: str) -> KeyRow:
        row = self.store.get_key(key_id)
        if row is None:
            raise GatewayError(404, "unknown_key", f"unknown key {key_id}")
        return row


def start(gateway_db: Path, settings: MonitorSettings) -> tuple[Monitor, threading.Event]:
    """The routes' monitor, and a started polling thread (set the event to stop it). Raises
    WebhookKeyError when the webhook key file is open to others (nothing is started)."""
    connectors = settings.connectors()
    path = gateway_db.parent / "monitor.db"
    db = _open(path)
    try:  # the key first: a monitor.db from before gives its seed row up to the key file
        key = open_key(settings.webhook_key or gateway_db.parent / KEY_FILE, db)
    finally:
        db.close()
    routes = _monitor(path, connectors, key)  # creates the schema first
    stop = threading.Event()

    def loop() -> None:
        mine = _monitor(path, connectors, key)
        store = GatewayStore(gateway_db)
        try:
            while not stop.is_set():
                try:
                    poll_once(_Wallets(store), mine, time.time())
                except ConnectorError as exc:
                    log.warning("monitor: chain backend not reachable: %s", exc)
                except Exception:  # the thread must outlive one bad round; say what broke
                    log.exception("monitor: polling round failed")
                stop.wait(settings.interval)
        finally:
            store.close()
            mine.webhooks.db.close()

    threading.Thread(target=loop, name="tholos-monitor", daemon=True).start()
    return routes, stop
