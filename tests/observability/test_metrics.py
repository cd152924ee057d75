"""The metrics exposition and the plain-HTTP /metrics listener."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tholos.observability import metrics as m


def _sample(text: str, name: str, **labels: str) -> float | None:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def test_gauges_read_at_scrape_and_failing_gauge_left_out() -> None:
    pool = {"ed25519": 3}

    def broken() -> list[tuple[tuple[str, ...], float]]:
        raise RuntimeError("store closed")

    reg = m.registry(
        m.NODE_METRICS,
        m.StateCollector(
            [
                m.Gauge("t_pool", "pool", ("group",), lambda: [((g,), c) for g, c in pool.items()]),
                m.Gauge("t_broken", "broken", (), broken),
            ]
        ),
    )
    before = _sample(m.exposition(reg)[0].decode(), "tholos_policy_refusals_total", rule="t") or 0
    m.POLICY_REFUSALS.labels("t").inc()
    pool["ed25519"] = 7
    text = m.exposition(reg)[0].decode()
    assert _sample(text, "t_pool", group="ed25519") == 7
    assert _sample(text, "tholos_policy_refusals_total", rule="t") == before + 1
    assert "t_broken" not in text


@pytest.mark.parametrize(
    ("status", "outcome"), [(200, "ok"), (201, "ok"), (404, "refused"), (503, "error")]
)
def test_outcome_of(status: int, outcome: str) -> None:
    assert m.outcome_of(status) == outcome


@pytest.mark.asyncio
async def test_listener_serves_metrics_only() -> None:
    reg = m.registry(m.NODE_METRICS)
    server = await m.serve(reg, 0)
    port = server.sockets[0].getsockname()[1]

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    try:
        status, body = await asyncio.to_thread(get, "/metrics")
        assert status == 200 and "tholos_node_rpc_total" in body
        assert (await asyncio.to_thread(get, "/"))[0] == 404
    finally:
        server.close()
        await server.wait_closed()
