"""Request ids, request metrics and the request log of the gateway's REST API.

The API's front (gateway/front.py) takes the caller's `X-Request-Id` (or makes one), binds it
for every log line and node RPC of the request (gRPC metadata, see gateway/transport.py) and
echoes it in the response; `record` counts and times each request by route, scheme and outcome,
and logs one line. `gateway_registry` adds the gauges read at scrape time."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry

from tholos.gateway.request_body import Scope
from tholos.observability import logs
from tholos.observability import metrics as m

log = logs.get_logger("tholos.gateway.http")
_log_std = logging.getLogger("tholos.gateway.http")
Samples = Iterable[tuple[tuple[str, ...], float]]
NODE_STATES = ("up", "slow", "down", "excluded")


def record(scope: Scope, status: int, seconds: float) -> None:
    """Count and time one answered request by route, scheme and outcome, and log it."""
    route = getattr(scope.get("route"), "path", None) or "unmatched"
    scheme = _scheme(scope)
    outcome = m.outcome_of(status)
    count, latency = _request_series(route, scope["method"], scheme, outcome)
    count.inc()
    latency.observe(seconds)
    # one line per request: DEBUG when it went well (metrics count them; the nodes' audit
    # chains record what was signed), INFO when refused or failed; see logs.log_levels
    level = logging.DEBUG if outcome == "ok" else logging.INFO
    if not _log_std.isEnabledFor(level):
        return
    client = (scope.get("state") or {}).get("api_client")
    log.log(
        level,
        "request",
        method=scope["method"],
        route=route,
        scheme=scheme,
        status=status,
        client=getattr(client, "name", None),
        seconds=round(seconds, 6),
    )


@functools.lru_cache(maxsize=4096)  # bounded: the method of an unmatched route is the caller's
def _request_series(route: str, method: str, scheme: str, outcome: str) -> tuple[Any, Any]:
    """The counter and histogram series of one label set, looked up once."""
    return (
        m.GATEWAY_REQUESTS.labels(route, method, scheme, outcome),
        m.GATEWAY_LATENCY.labels(route, scheme, outcome),
    )


def _scheme(scope: Scope) -> str:
    """The scheme of the key a request names (`{key_id}` in its route), or "none"."""
    key_id = (scope.get("path_params") or {}).get("key_id")
    app = scope.get("app")
    gw = getattr(getattr(app, "state", None), "gateway", None)
    if not key_id or gw is None:
        return "none"
    try:
        return str(gw.key(key_id).scheme)
    except Exception:  # unknown or malformed key id: the request was refused
        return "none"


def gateway_registry(gw: Any) -> CollectorRegistry:
    """The gateway's metrics: request counters and latencies, and gauges read from `gw`."""
    from tholos.gateway.requests import governed
    from tholos.gateway.scheme_protocols import presignatures

    def states() -> Samples:
        counts = dict.fromkeys(NODE_STATES, 0)
        for n in gw.nodes.status():
            counts[n["state"]] = counts.get(n["state"], 0) + 1
        return [((s,), float(c)) for s, c in counts.items()]

    def node_state() -> Samples:
        return [
            ((str(n["node_id"]), s), 1.0 if n["state"] == s else 0.0)
            for n in gw.nodes.status()
            for s in NODE_STATES
        ]

    def commitments() -> Samples:
        return [
            ((str(n["node_id"]), g), float(c))
            for n in gw.nodes.status()
            for g, c in sorted(n["pooled_commitments"].items())
        ]

    def nonces() -> Samples:
        return [
            ((str(n["node_id"]), g), float(c))
            for n in gw.nodes.status()
            for g, c in sorted(n["nonces"].items())
        ]

    def stale() -> Samples:
        return [
            ((str(i),), float(len(st.info.stale_keys)))
            for i, st in gw.nodes.nodes.items()
            if st.info is not None
        ]

    def presigs() -> Samples:
        pools = presignatures(gw).pools
        return [((), float(sum(len(p) for p in pools.values())))]

    def audit() -> Samples:
        chain = governed(gw).audit
        return [] if chain is None else [(("gateway",), float(chain.head()[0]))]

    return m.registry(
        m.GATEWAY_METRICS,
        m.StateCollector(
            [
                m.Gauge("tholos_gateway_nodes", "Nodes by health state", ("state",), states),
                m.Gauge(
                    "tholos_gateway_node_state",
                    "1 for the state each node is in (up, slow, down, excluded)",
                    ("node", "state"),
                    node_state,
                ),
                m.Gauge(
                    "tholos_gateway_commitment_pool",
                    "Nonce commitments the gateway holds ready, by node and group",
                    ("node", "group"),
                    commitments,
                ),
                m.Gauge(
                    "tholos_node_nonces",
                    "Unused nonces in each node's pool, as the node last reported",
                    ("node", "group"),
                    nonces,
                ),
                m.Gauge(
                    "tholos_node_stale_keys",
                    "Keys whose share on the node is stale (needs repair), as it last reported",
                    ("node",),
                    stale,
                ),
                m.Gauge(
                    "tholos_gateway_presignatures",
                    "ECDSA presignatures pooled at the gateway (all keys)",
                    (),
                    presigs,
                ),
                m.Gauge(
                    "tholos_audit_chain_height",
                    "Entries in the audit chain (sequence number of its head)",
                    ("chain",),
                    audit,
                ),
            ]
        ),
    )
