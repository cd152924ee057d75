"""`tholos bench --wan`: the cluster's gateway–node links through relays with the three-site
WAN profile (netsim/sites.py), and the figures that only mean something there.

The relays run on loopback in the bench process (a background thread, so the client's CPU column
includes their forwarding), one per node; the gateway config is rewritten to dial them before the
gateway starts. Per measurement window it reports the gateway→node exchanges per operation of
every node (the relays' request/answer turns, see netsim/relay.py), the round trips of each
request at one in flight, and the latency goals: sign p50 ≤ 1 RTT + 5 ms, keygen p50 ≤ its round
trips × RTT + 10 ms, RTT being the inter-site one (the gateway does not pick quorums by site).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tholos.netsim.sites import RelayFleet, WanProfile, route_gateway_through

__all__ = [
    "WanLinks",
    "WanProfile",
    "annotate",
    "cells",
    "critical_path",
    "round_trips",
    "target_ms",
]

SIGN_SLACK_MS = 5.0
KEYGEN_SLACK_MS = 10.0

Exchanges = dict[int, int]  # node id -> request/answer turns so far


class WanLinks:
    """The relays of one cluster: start before the gateway, stop after it (context manager)."""

    def __init__(self, gateway_config: Path, profile: WanProfile) -> None:
        import json

        self.profile = profile
        self._config = gateway_config
        nodes = json.loads(gateway_config.read_text())["nodes"]
        self.fleet = RelayFleet({int(i): a for i, a in nodes.items()}, profile)
        self._previous: dict[str, str] = {}

    def __enter__(self) -> WanLinks:
        self.fleet.__enter__()
        self._previous = route_gateway_through(self._config, self.fleet.addresses)
        return self

    def __exit__(self, *exc: object) -> None:
        self.fleet.__exit__(*exc)
        route_gateway_through(self._config, {int(i): a for i, a in self._previous.items()})

    def sample(self) -> Exchanges:
        return {i: r.exchanges for i, r in self.fleet.relays.items()}

    def describe(self) -> dict[str, Any]:
        sites = {i: self.profile.site_of(i) for i in sorted(self.fleet.relays)}
        return {
            **self.profile.describe(),
            "node_sites": sites,
            "relays": "loopback",
        }


def round_trips(before: Exchanges, after: Exchanges, ops: int) -> dict[str, Any]:
    """Gateway→node exchanges per operation over a window: each node's, and their sum (the
    gateway's RPCs per operation, health probes included)."""
    if ops <= 0:
        return {}
    each = {f"node-{i}": (after[i] - before[i]) / ops for i in sorted(before)}
    return {"round_trips_per_node": each, "rpcs_per_op": sum(each.values())}


def critical_path(requests: list[tuple[Exchanges, Exchanges]]) -> dict[str, Any]:
    """Sequential round trips of each request measured alone (one in flight): the gateway talks
    to the nodes in parallel, so a request waits for the node it needed the most exchanges with.
    Median and mean over the requests; empty when there were none."""
    if not requests:
        return {}
    per = sorted(max((a[i] - b[i] for i in b), default=0) for b, a in requests)
    return {
        "round_trips_p50": float(per[len(per) // 2]),
        "round_trips_mean": sum(per) / len(per),
        "round_trips_max": float(per[-1]),
    }


def target_ms(mode: str, res: Mapping[str, Any], profile: WanProfile) -> float | None:
    """The p50 goal for a single-request mode, or None for modes without one (batches)."""
    rtt = profile.inter_site_rtt_ms
    if mode.startswith("sign/") or mode.startswith(("encrypt/", "decrypt/")):
        return rtt + SIGN_SLACK_MS
    if mode.startswith("keygen/") and "round_trips_p50" in res:
        return float(res["round_trips_p50"]) * rtt + KEYGEN_SLACK_MS
    return None


def annotate(row: dict[str, Any], profile: WanProfile | None) -> None:
    """Add the p50 goal to a row measured over the WAN (the goals are for one request in
    flight)."""
    if profile is not None and "rpcs_per_op" in row and row.get("concurrency") == 1:
        row["p50_target_ms"] = target_ms(str(row["mode"]), row, profile)


def cells(r: Mapping[str, Any]) -> str:
    """`RPCs/op | round trips/op (p50, max) | p50 target ms |`, dashes where not measured."""
    if "rpcs_per_op" not in r:
        return " – | – | – |"
    target = r.get("p50_target_ms")
    trips = (
        f"{r['round_trips_p50']:.0f} ({r['round_trips_max']:.0f})"
        if "round_trips_p50" in r
        else "–"
    )
    return f" {r['rpcs_per_op']:.2f} | {trips} | {'–' if target is None else f'{target:.0f}'} |"


HEADER = " RPCs/op | round trips/op p50 (max) | p50 target ms |"
ALIGN = "---:|---:|---:|"
