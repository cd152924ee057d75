"""The broadcaster as a gateway background thread, when the gateway's config has a `broadcast`
section: {"ethereum_rpc": [URL, ...], "confirmations": N, "interval": seconds}. It keeps its
own connection to the gateway's database; being leased and idempotent by hash, it may run next
to `tholos broadcast run` processes and may die at any point without sending anything twice."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tholos.connectors.base import Connector, ConnectorError
from tholos.connectors.ethereum import EthereumRpc
from tholos.gateway.broadcaster import Backoff, Broadcaster
from tholos.gateway.store import GatewayStore

log = logging.getLogger("tholos.broadcast")


@dataclass(frozen=True)
class BroadcastSettings:
    ethereum_rpc: tuple[str, ...]
    confirmations: int = 1
    interval: float = 2.0

    @classmethod
    def from_config(cls, d: Mapping[str, Any]) -> BroadcastSettings:
        unknown = set(d) - {"ethereum_rpc", "confirmations", "interval"}
        if unknown:
            raise ValueError(f"broadcast: unknown setting(s) {sorted(unknown)}")
        urls = d.get("ethereum_rpc", [])
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ValueError("broadcast.ethereum_rpc: a list of JSON-RPC URLs")
        s = cls(tuple(urls), int(d.get("confirmations", 1)), float(d.get("interval", 2.0)))
        if s.confirmations < 1 or s.interval <= 0:
            raise ValueError("broadcast: confirmations at least 1, interval above 0")
        return s


def ethereum_connectors(
    urls: Sequence[str], confirmations: int
) -> dict[tuple[str, str], Connector]:
    """One connector per URL, keyed by the chain id it reports (raises ConnectorError)."""
    out: dict[tuple[str, str], Connector] = {}
    for url in urls:
        rpc = EthereumRpc(url, confirmations=confirmations)
        out[("ethereum", str(rpc.chain_id()))] = rpc
    return out


def start(db: Path, settings: BroadcastSettings) -> threading.Event:
    """Start the broadcaster thread; set the returned event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        connectors: dict[tuple[str, str], Connector] = {}
        while not stop.is_set() and not connectors:
            try:
                connectors = ethereum_connectors(settings.ethereum_rpc, settings.confirmations)
            except ConnectorError as exc:
                log.warning("broadcast: chain backend not ready: %s", exc)
                stop.wait(settings.interval)
        store = GatewayStore(db)
        try:
            b = Broadcaster(
                store.outbox,
                connectors,
                confirmations=settings.confirmations,
                backoff=Backoff(poll=settings.interval),
            )
            log.info("broadcasting for %s", sorted(connectors))
            b.run(stop, settings.interval)
        finally:
            store.close()

    if settings.ethereum_rpc:
        threading.Thread(target=loop, name="tholos-broadcast", daemon=True).start()
    return stop
