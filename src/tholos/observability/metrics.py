"""The Prometheus metrics of tholos. Counters and histograms are process-wide objects, registered
in each process's registry (`registry`), with gauges read at scrape time from a callback
(`StateCollector`): pool sizes, node states and audit chain heights are never stale.

Names (see deploy/grafana/tholos.json):
- gateway: `tholos_gateway_requests_total` / `tholos_gateway_request_seconds` by route, method,
  scheme, outcome; gauges `tholos_gateway_nodes` (by state), `tholos_gateway_node_state`,
  `tholos_gateway_commitment_pool`, `tholos_gateway_presignatures`, `tholos_node_nonces` and
  `tholos_node_stale_keys` (as each node last reported), `tholos_audit_chain_height`.
- node: `tholos_node_rpc_total` / `tholos_node_rpc_seconds` by method, outcome;
  `tholos_node_signature_shares_total` by outcome; gauges `tholos_node_nonces`,
  `tholos_node_keys`, `tholos_node_stale_keys`, `tholos_audit_chain_height`.
- both: `tholos_policy_refusals_total` by rule (the node's policy decisions; governance)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

# No `_created` series: they would double every counter for no use here.
disable_created_metrics()  # type: ignore[no-untyped-call]
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

GATEWAY_REQUESTS = Counter(
    "tholos_gateway_requests",
    "REST requests answered by the gateway",
    ["route", "method", "scheme", "outcome"],
    registry=None,
)
GATEWAY_LATENCY = Histogram(
    "tholos_gateway_request_seconds",
    "Time to answer a REST request",
    ["route", "scheme", "outcome"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
NODE_RPCS = Counter(
    "tholos_node_rpc", "gRPC calls answered by the node", ["method", "outcome"], registry=None
)
NODE_LATENCY = Histogram(
    "tholos_node_rpc_seconds",
    "Time to answer a gRPC call",
    ["method", "outcome"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
NODE_SHARES = Counter(
    "tholos_node_signature_shares",
    "Signing items the node answered in SignBatch: signed (a share) or refused",
    ["outcome"],
    registry=None,
)
POLICY_REFUSALS = Counter(
    "tholos_policy_refusals",
    "Requests refused by a policy decision, by the rule (or built-in check) that refused",
    ["rule"],
    registry=None,
)
GATEWAY_METRICS = (GATEWAY_REQUESTS, GATEWAY_LATENCY, POLICY_REFUSALS)
NODE_METRICS = (NODE_RPCS, NODE_LATENCY, NODE_SHARES, POLICY_REFUSALS)


def outcome_of(status: int) -> str:
    """An HTTP status as an outcome label: ok (2xx/3xx), refused (4xx), error (5xx)."""
    return "ok" if status < 400 else "refused" if status < 500 else "error"


@dataclass
class Gauge:
    """One gauge family read at scrape time: `samples` gives (label values, value) pairs."""

    name: str
    help: str
    labels: tuple[str, ...]
    samples: Callable[[], Iterable[tuple[tuple[str, ...], float]]]


class StateCollector(Collector):
    """Gauges computed when Prometheus scrapes; a gauge whose callback fails is left out of
    that scrape (the failure must not hide the other metrics)."""

    def __init__(self, gauges: Iterable[Gauge] = ()) -> None:
        self.gauges = list(gauges)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for g in self.gauges:
            try:
                samples = list(g.samples())
            except Exception:
                continue
            fam = GaugeMetricFamily(g.name, g.help, labels=list(g.labels))
            for labels, value in samples:
                fam.add_metric(list(labels), value)
            yield fam


def registry(
    metrics: Iterable[Collector], state: StateCollector | None = None
) -> CollectorRegistry:
    """A registry of this process's metrics (one per app or node service)."""
    reg = CollectorRegistry(auto_describe=True)
    for m in metrics:
        reg.register(m)
    if state is not None:
        reg.register(state)
    return reg


def exposition(reg: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition format of `reg` and its content type."""
    return generate_latest(reg), CONTENT_TYPE_LATEST


async def serve(reg: CollectorRegistry, port: int, host: str = "127.0.0.1") -> asyncio.Server:
    """A plain-HTTP `GET /metrics` listener on host:port for Prometheus scrapers, in the running
    event loop (the gauges read state owned by that loop). It has no authentication: bind it to
    127.0.0.1 or a private interface. Close the returned server to stop it."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            parts = head.split(b"\r\n", 1)[0].split(b" ")
            if len(parts) == 3 and parts[0] in (b"GET", b"HEAD") and parts[1] == b"/metrics":
                body, ctype = exposition(reg)
                status = b"200 OK"
            else:
                body, ctype, status = b"only GET /metrics\n", "text/plain", b"404 Not Found"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: "
                + ctype.encode()
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + (body if parts[0] != b"HEAD" else b"")
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port, limit=16 * 1024)
