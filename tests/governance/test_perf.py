"""Evaluation cost: the node evaluates on every signature; keep it well under 0.5 ms."""

from __future__ import annotations

import statistics
import time

from .conftest import NOW, Cluster, MemorySeen, entry, evaluator


def test_evaluation_is_fast(cluster: Cluster) -> None:
    state = cluster.state()
    ev = evaluator()
    req = cluster.request(amount=50_000)
    approvals = cluster.approvals(req, "tina", "tom", "rita")
    seen = MemorySeen({req.intent.request_id: "pending"})
    entries = [entry(f"h-{i:07d}", 10, key_id="k2") for i in range(200)]
    samples = []
    for _ in range(300):
        start = time.perf_counter()
        decision = ev.evaluate(state, req, approvals, now=NOW, seen=seen, velocity_entries=entries)
        samples.append(time.perf_counter() - start)
        assert decision.accepted
    median = statistics.median(samples)
    print(f"\nevaluate, 3 approvals, 200 journal entries: median {median * 1e6:.0f} us")
    assert median < 0.002  # generous on a shared CI machine; measured locally in the report
