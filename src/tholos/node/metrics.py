"""The node's /metrics: RPC counters and latencies (observability.metrics) plus gauges read
from the service when scraped: nonce pool by group, keys, stale shares, audit chain height."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry

from tholos.node.service import NodeService
from tholos.observability.metrics import NODE_METRICS, Gauge, StateCollector, registry

Samples = Iterable[tuple[tuple[str, ...], float]]


def node_registry(service: NodeService) -> CollectorRegistry:
    node = str(service.identity.node_id)

    def nonces() -> Samples:
        return [((node, g), float(c)) for g, c in sorted(service.store.count_nonces().items())]

    def keys() -> Samples:
        return [((node,), float(service.store.count_keys()))]

    def stale() -> Samples:
        return [((node,), float(len(service.vault.stale)))]

    def audit() -> Samples:
        gov = service.governance
        return [] if gov is None else [((f"node-{node}",), float(gov.audit.head()[0]))]

    return registry(
        NODE_METRICS,
        StateCollector(
            [
                Gauge(
                    "tholos_node_nonces",
                    "Unused nonces in the node's pool",
                    ("node", "group"),
                    nonces,
                ),
                Gauge("tholos_node_keys", "Key shares the node holds", ("node",), keys),
                Gauge(
                    "tholos_node_stale_keys",
                    "Keys whose share here is older than the epoch requested (needs repair)",
                    ("node",),
                    stale,
                ),
                Gauge(
                    "tholos_audit_chain_height",
                    "Entries in the audit chain (sequence number of its head)",
                    ("chain",),
                    audit,
                ),
            ]
        ),
    )
