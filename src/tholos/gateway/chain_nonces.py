"""The chain's own next nonce of an Ethereum address, when the gateway has an Ethereum connector
(`broadcast.ethereum_rpc` or `monitor.ethereum_rpc` in gateway.json): a nonce allocation's floor
is then the larger of the caller's and `eth_getTransactionCount(address, "pending")`, so that
transactions sent from the address outside tholos push the allocated nonce up. A connector is
used for the chain id it reports; a gateway with none for a chain keeps the caller's floor."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from tholos.connectors.base import ConnectorError
from tholos.connectors.ethereum import EthereumRpc
from tholos.gateway.errors import GatewayError
from tholos.gateway.service import Gateway


@dataclass(frozen=True)
class Floor:
    """An allocation's floor and where it came from: `chain` when the chain's next nonce is
    above the caller's floor, else `caller`; `chain_next` is None when no connector was asked."""

    value: int
    source: str
    chain_next: int | None

    def summary(self) -> dict[str, object]:
        return {"floor": self.value, "floor_from": self.source, "chain_next": self.chain_next}


class ChainNonces:
    """The gateway's Ethereum connectors, found by the chain id each node reports (asked once
    per URL; one that did not answer is asked again next time)."""

    def __init__(self, urls: Sequence[str]) -> None:
        self._unasked = list(dict.fromkeys(urls))
        self._by_chain: dict[str, EthereumRpc] = {}
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return bool(self._unasked or self._by_chain)

    def floor(self, chain_id: str, address: str, caller: int) -> Floor:
        """Blocking (JSON-RPC): max(caller's floor, the chain's pending nonce). 503
        `chain_unavailable` when the chain's connector cannot be asked: nothing is allocated on
        a floor the gateway could not check."""
        if not self.configured:
            return Floor(caller, "caller", None)
        rpc = self._connector(chain_id)
        if rpc is None:
            return Floor(caller, "caller", None)
        try:
            chain_next = rpc.nonce(address, pending=True)
        except ConnectorError as exc:
            raise GatewayError(
                503, "chain_unavailable", f"chain {chain_id}: next nonce of {address}: {exc}"
            ) from None
        if chain_next > caller:
            return Floor(chain_next, "chain", chain_next)
        return Floor(caller, "caller", chain_next)

    def _connector(self, chain_id: str) -> EthereumRpc | None:
        with self._lock:
            errors = []
            for url in list(self._unasked):
                rpc = EthereumRpc(url)
                try:
                    self._by_chain.setdefault(str(rpc.chain_id()), rpc)
                except ConnectorError as exc:
                    errors.append(str(exc))
                    continue
                self._unasked.remove(url)
            found = self._by_chain.get(chain_id)
        if found is None and errors:  # the chain may be the one behind a silent connector
            raise GatewayError(
                503, "chain_unavailable", f"chain {chain_id}: an Ethereum connector: {errors[0]}"
            )
        return found


_BY_GATEWAY: weakref.WeakKeyDictionary[Gateway, ChainNonces] = weakref.WeakKeyDictionary()
"""Weak: a gateway gone (a test's) leaves nothing for one created later at the same address."""


def attach(gw: Gateway, urls: Sequence[str]) -> ChainNonces:
    """Give the gateway its Ethereum connectors' URLs (none: callers' floors only)."""
    found = ChainNonces(urls)
    _BY_GATEWAY[gw] = found
    return found


def of(gw: Gateway) -> ChainNonces:
    """The gateway's chain nonces (none configured unless `attach` was called)."""
    return _BY_GATEWAY.get(gw) or ChainNonces(())
