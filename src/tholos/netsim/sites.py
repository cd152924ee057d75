"""The three-data-centre model: nodes spread over sites, the gateway in one of them, a relay in
front of every node giving its gateway link the delay of the sites between them.

Nodes talk only through the gateway (a star), so the gateway–node links are the only ones that
matter: a node in the gateway's site sees the intra-site RTT, every other node the inter-site RTT.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tholos.netsim.relay import LinkProfile, Relay


@dataclass(frozen=True)
class WanProfile:
    """Sites and round-trip times (ms). Node i lives in site (i - 1) mod sites."""

    sites: int = 3
    inter_site_rtt_ms: float = 20.0
    intra_site_rtt_ms: float = 1.0
    jitter_ms: float = 0.0
    gateway_site: int = 0

    def site_of(self, node_id: int) -> int:
        return (node_id - 1) % self.sites

    def link(self, node_id: int) -> LinkProfile:
        """One-way profile of the gateway–node link (half the RTT each way)."""
        same = self.site_of(node_id) == self.gateway_site
        rtt = self.intra_site_rtt_ms if same else self.inter_site_rtt_ms
        return LinkProfile(delay_ms=rtt / 2, jitter_ms=self.jitter_ms / 2)

    def describe(self) -> dict[str, Any]:
        return {
            "sites": self.sites,
            "inter_site_rtt_ms": self.inter_site_rtt_ms,
            "intra_site_rtt_ms": self.intra_site_rtt_ms,
            "jitter_ms": self.jitter_ms,
            "gateway_site": self.gateway_site,
        }


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class RelayFleet:
    """One relay per node, run on an event loop in a background thread (so a benchmark's or a
    test's own loop is not slowed by forwarding). Use as a context manager."""

    def __init__(self, nodes: Mapping[int, str], profile: WanProfile, *, seed: int = 1) -> None:
        self.profile = profile
        self._targets = {i: _split(a) for i, a in nodes.items()}
        self._seed = seed
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.relays: dict[int, Relay] = {}

    def __enter__(self) -> RelayFleet:
        self._thread.start()
        self._run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self._run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _start(self) -> None:
        for node_id, target in sorted(self._targets.items()):
            relay = Relay(target, self.profile.link(node_id), seed=self._seed + node_id)
            self.relays[node_id] = await relay.start()

    async def _stop(self) -> None:
        for relay in self.relays.values():
            await relay.stop()

    @property
    def addresses(self) -> dict[int, str]:
        """node id -> the relay's host:port, what the gateway must dial instead of the node."""
        return {i: "{}:{}".format(*r.address) for i, r in self.relays.items()}

    def nodes_in(self, site: int) -> list[int]:
        return [i for i in sorted(self.relays) if self.profile.site_of(i) == site]

    def cut_site(self, site: int) -> list[int]:
        """Cut every node of `site` off the gateway; returns their ids."""
        ids = self.nodes_in(site)
        for i in ids:
            self._loop.call_soon_threadsafe(self.relays[i].cut)
        return ids

    def restore_site(self, site: int) -> None:
        for i in self.nodes_in(site):
            self._loop.call_soon_threadsafe(self.relays[i].restore)

    def cut_node(self, node_id: int) -> None:
        self._loop.call_soon_threadsafe(self.relays[node_id].cut)

    def restore_node(self, node_id: int) -> None:
        self._loop.call_soon_threadsafe(self.relays[node_id].restore)


def route_gateway_through(gateway_config: Path, addresses: Mapping[int, str]) -> dict[str, str]:
    """Point a gateway config's node addresses at the relays; returns the previous addresses so
    the caller can put them back. The gateway must be (re)started to pick it up."""
    config = json.loads(gateway_config.read_text())
    previous = dict(config["nodes"])
    config["nodes"] = {str(i): a for i, a in sorted(addresses.items())}
    gateway_config.write_text(json.dumps(config, indent=2))
    return previous
