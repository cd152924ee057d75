"""The broadcaster as a gateway background thread, when the gateway's config has a `broadcast`
section: {"ethereum_rpc": [URL, ...], "bitcoin_rpc": [URL, ...], "bitcoin_cookie": PATH,
"solana_rpc": [URL, ...], "confirmations": N, "interval": seconds}. It keeps its
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
from tholos.connectors.bitcoin_core import BitcoinCore
from tholos.connectors.ethereum import EthereumRpc
from tholos.connectors.solana_rpc import SolanaRpc
from tholos.gateway.broadcaster import Backoff, Broadcaster
from tholos.gateway.store import GatewayStore

log = logging.getLogger("tholos.broadcast")


@dataclass(frozen=True)
class BroadcastSettings:
    ethereum_rpc: tuple[str, ...]
    confirmations: int = 1
    interval: float = 2.0
    bitcoin_rpc: tuple[str, ...] = ()
    solana_rpc: tuple[str, ...] = ()
    bitcoin_cookie: Path | None = None

    @classmethod
    def from_config(cls, d: Mapping[str, Any]) -> BroadcastSettings:
        keys = {"ethereum_rpc", "bitcoin_rpc", "bitcoin_cookie", "solana_rpc"}
        unknown = set(d) - keys - {"confirmations", "interval"}
        if unknown:
            raise ValueError(f"broadcast: unknown setting(s) {sorted(unknown)}")
        urls = {key: _urls(d, key) for key in ("ethereum_rpc", "bitcoin_rpc", "solana_rpc")}
        cookie = d.get("bitcoin_cookie")
        if cookie is not None and not isinstance(cookie, str):
            raise ValueError("broadcast.bitcoin_cookie: the path of bitcoind's .cookie file")
        s = cls(
            urls["ethereum_rpc"],
            int(d.get("confirmations", 1)),
            float(d.get("interval", 2.0)),
            urls["bitcoin_rpc"],
            urls["solana_rpc"],
            None if cookie is None else Path(cookie),
        )
        if s.confirmations < 1 or s.interval <= 0:
            raise ValueError("broadcast: confirmations at least 1, interval above 0")
        return s

    def connectors(self) -> dict[tuple[str, str], Connector]:
        return chain_connectors(
            self.ethereum_rpc,
            self.confirmations,
            bitcoin=self.bitcoin_rpc,
            solana=self.solana_rpc,
            bitcoin_cookie=self.bitcoin_cookie,
        )

    @property
    def any(self) -> bool:
        return bool(self.ethereum_rpc or self.bitcoin_rpc or self.solana_rpc)


def _urls(d: Mapping[str, Any], key: str) -> tuple[str, ...]:
    urls = d.get(key, [])
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ValueError(f"broadcast.{key}: a list of JSON-RPC URLs")
    return tuple(urls)


def ethereum_connectors(
    urls: Sequence[str], confirmations: int
) -> dict[tuple[str, str], Connector]:
    """One connector per URL, keyed by the chain id it reports (raises ConnectorError)."""
    return chain_connectors(urls, confirmations)


def chain_connectors(
    ethereum: Sequence[str],
    confirmations: int,
    *,
    bitcoin: Sequence[str] = (),
    solana: Sequence[str] = (),
    bitcoin_cookie: Path | None = None,
) -> dict[tuple[str, str], Connector]:
    """One connector per URL, keyed (chain, network) by what the node reports: Ethereum's chain
    id, Bitcoin Core's chain (mainnet, testnet, signet, regtest), Solana's genesis (mainnet-beta,
    devnet, testnet, else localnet). Raises ConnectorError if a node cannot be asked."""
    out: dict[tuple[str, str], Connector] = {}
    for url in ethereum:
        eth = EthereumRpc(url, confirmations=confirmations)
        out[("ethereum", str(eth.chain_id()))] = eth
    for url in bitcoin:
        btc = BitcoinCore(url, cookie=bitcoin_cookie, confirmations=confirmations)
        out[("bitcoin", btc.network())] = btc
    for url in solana:
        sol = SolanaRpc(url, confirmations=confirmations)
        out[("solana", sol.network())] = sol
    return out


def start(db: Path, settings: BroadcastSettings) -> threading.Event:
    """Start the broadcaster thread; set the returned event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        connectors: dict[tuple[str, str], Connector] = {}
        while not stop.is_set() and not connectors:
            try:
                connectors = settings.connectors()
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

    if settings.any:
        threading.Thread(target=loop, name="tholos-broadcast", daemon=True).start()
    return stop
