"""`tholos bench --wan`: the round-trip accounting (fast), and one real run of the benchmark
through the three-site relays (slow). Lower bounds only: how much slower a loaded machine is
is not a test's business."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tholos.bench import run, wan
from tholos.netsim.sites import WanProfile


def test_round_trips_per_node_and_rpcs_per_op() -> None:
    r = wan.round_trips({1: 10, 2: 4, 3: 0}, {1: 14, 2: 6, 3: 0}, 2)
    assert r == {
        "round_trips_per_node": {"node-1": 2.0, "node-2": 1.0, "node-3": 0.0},
        "rpcs_per_op": 3.0,
    }
    assert wan.round_trips({1: 0}, {1: 5}, 0) == {}


def test_critical_path_is_the_node_needing_most_exchanges_per_request() -> None:
    requests = [
        ({1: 0, 2: 0}, {1: 1, 2: 1}),
        ({1: 1, 2: 1}, {1: 2, 2: 5}),
        ({1: 2, 2: 5}, {1: 3, 2: 6}),
    ]
    assert wan.critical_path(requests) == {
        "round_trips_p50": 1.0,
        "round_trips_mean": 2.0,
        "round_trips_max": 4.0,
    }
    assert wan.critical_path([]) == {}


def test_goals_use_the_inter_site_rtt_and_only_one_in_flight() -> None:
    profile = WanProfile()  # 20 ms between sites
    sign = {"mode": "sign/latency", "concurrency": 1, "rpcs_per_op": 2.0}
    wan.annotate(sign, profile)
    assert sign["p50_target_ms"] == 25.0
    keygen = {
        "mode": "keygen/latency",
        "concurrency": 1,
        "rpcs_per_op": 16.0,
        "round_trips_p50": 4.0,
    }
    wan.annotate(keygen, profile)
    assert keygen["p50_target_ms"] == 90.0
    busy = {"mode": "sign/single", "concurrency": 16, "rpcs_per_op": 0.3}
    wan.annotate(busy, profile)
    assert "p50_target_ms" not in busy
    local = {"mode": "sign/latency", "concurrency": 1}
    wan.annotate(local, profile)  # not over the WAN: no goal
    assert "p50_target_ms" not in local


def test_table_has_wan_columns_and_names_a_stopped_scheme() -> None:
    row = {
        "n": 4,
        "t": 2,
        "scheme": "bip340",
        "mode": "sign/latency",
        "batch": 1,
        "concurrency": 1,
        "ops_per_s": 30.0,
        "p50_ms": 31.0,
        "p95_ms": 40.0,
        "p99_ms": 50.0,
        "rpcs_per_op": 2.0,
        "round_trips_p50": 1.0,
        "round_trips_max": 1.0,
        "p50_target_ms": 25.0,
        "cpu_us_each_node": {"node-10": 5.0, "node-2": 7.0},
    }
    failed = {"n": 7, "t": 3, "scheme": "ecdsa", "error": "HTTP 503: presign_failed"}
    lines = run.table([row, failed]).splitlines()
    header, align, line = lines[:3]
    assert "RPCs/op | round trips/op p50 (max) | p50 target ms | CPU µs/op each node |" in header
    assert header.count("|") == align.count("|") == line.count("|")
    assert "| 2.00 | 1 (1) | 25 | 7 / 5 |" in line  # node 2 before node 10
    assert "ecdsa at (7,3) stopped: HTTP 503: presign_failed" in lines


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_wan_reports_round_trips_goals_and_per_node_cpu() -> None:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "tholos",
            "bench",
            "--wan",
            "--duration",
            "0.5",
            "--schemes",
            "bip340",
            "--configs",
            "4:2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(os.environ),
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    profile = out["wan"]
    assert profile["inter_site_rtt_ms"] == 20.0 and profile["intra_site_rtt_ms"] == 1.0
    assert profile["node_sites"] == {"1": 0, "2": 1, "3": 2, "4": 0}
    rows = {r["mode"]: r for r in out["results"]}
    assert set(rows) >= {"keygen/latency", "sign/latency", "sign/batch"}
    one_way_inside = profile["intra_site_rtt_ms"] / 2
    for r in rows.values():
        assert r["errors"] == 0, r
        assert r["p50_ms"] >= one_way_inside and r["p95_ms"] >= r["p50_ms"]
        assert set(r["cpu_us_each_node"]) == {"node-1", "node-2", "node-3", "node-4"}
        assert set(r["round_trips_per_node"]) == set(r["cpu_us_each_node"])
        assert r["rpcs_per_op"] > 0
    keygen, sign = rows["keygen/latency"], rows["sign/latency"]
    # a key needs every node, two of them in remote sites: at least one inter-site round trip
    assert keygen["p50_ms"] >= profile["inter_site_rtt_ms"]
    assert keygen["round_trips_p50"] >= 1 and sign["round_trips_p50"] >= 1
    assert keygen["p50_target_ms"] == keygen["round_trips_p50"] * 20.0 + 10.0
    assert sign["p50_target_ms"] == 25.0
    assert "p50_target_ms" not in rows["sign/batch"]
