"""The goals of `tholos bench` (bench/targets.py): every figure beside its target, computed from
synthetic rows (no cluster), and the in-process costs they compare with."""

from __future__ import annotations

from typing import Any

import pytest

from tholos.bench import readme, targets


def row(n: int, t: int, scheme: str, mode: str, **kw: Any) -> dict[str, Any]:
    return {"n": n, "t": t, "scheme": scheme, "mode": mode, "batch": 1, "concurrency": 16, **kw}


ROWS = [
    row(
        4,
        2,
        "bip340",
        "sign/batch",
        ops_per_s=900,
        p50_ms=3.0,
        cpu_us_nodes=400.0,
        cpu_us_per_node=100.0,
        cpu_us_gateway=300.0,
    ),
    row(
        7,
        3,
        "bip340",
        "sign/batch",
        ops_per_s=600,
        p50_ms=4.0,
        cpu_us_nodes=1120.0,
        cpu_us_per_node=160.0,
        cpu_us_gateway=380.0,
    ),
    row(
        4,
        2,
        "bip340",
        "sign/policy",
        ops_per_s=300,
        p50_ms=9.0,
        cpu_us_nodes=720.0,
        cpu_us_per_node=180.0,
        cpu_us_gateway=500.0,
    ),
    row(4, 2, "ecdsa", "presign/sustained", ops_per_s=120.0, p50_ms=800.0),
    row(
        4,
        2,
        "bls12381",
        "sign/latency",
        concurrency=1,
        ops_per_s=40,
        p50_ms=24.0,
        rpcs_per_op=2.0,
        round_trips_p50=1.0,
        p50_target_ms=25.0,
    ),
    row(
        4,
        2,
        "bip340",
        "keygen/latency",
        concurrency=1,
        ops_per_s=10,
        p50_ms=95.0,
        rpcs_per_op=8.0,
        round_trips_p50=3.0,
        p50_target_ms=70.0,
    ),
    {"n": 7, "t": 3, "scheme": "ecdsa", "error": "HTTP 503"},
]
REFERENCE = {
    "frost_bip340_single_process_us": {"4:2": 400.0, "7:3": 600.0},
    "ed25519_verify_us": 40.0,
}


def by_goal(figs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["goal"], f["config"]): f for f in figs}


def test_every_goal_with_its_target() -> None:
    f = by_goal(targets.figures(ROWS, REFERENCE))
    per_node = f[("per-node CPU bip340 sign/batch (7,3)/(4,2)", "")]
    assert per_node["measured"] == pytest.approx(1.6) and per_node["target"] == 1.5
    assert not per_node["met"]
    frost = f[("FROST BIP340 cluster CPU / single-process CPU per signature", "(4,2)")]
    assert frost["measured"] == pytest.approx(700 / 400) and not frost["met"]
    frost7 = f[("FROST BIP340 cluster CPU / single-process CPU per signature", "(7,3)")]
    assert frost7["measured"] == pytest.approx(1500 / 600)
    gov = f[("governance: nodes' extra CPU / their Ed25519 verifications per signature", "(4,2)")]
    # (720 - 400) µs extra against t=2 signers × (initiator + 1 approval) × 40 µs = 160 µs
    assert gov["measured"] == pytest.approx(2.0) and not gov["met"]
    ecdsa = f[("ECDSA sustained (presignatures while signing)", "(4,2)")]
    assert ecdsa["measured"] == 120.0 and ecdsa["target"] == 300.0 and not ecdsa["met"]
    trips = f[("round trips per signature bls12381 sign/latency", "(4,2)")]
    assert trips["measured"] == 1.0 and trips["met"]
    wan_sign = f[("WAN p50 ≤ 1 RTT + 5 ms: bls12381 sign/latency", "(4,2)")]
    assert wan_sign["met"] and wan_sign["target"] == 25.0
    keygen = f[("WAN keygen p50 ≤ rounds×RTT + 10 ms: bip340 keygen/latency", "(4,2)")]
    assert keygen["measured"] == 95.0 and not keygen["met"]


def test_goals_not_measured_are_left_out() -> None:
    assert targets.figures(ROWS[:1], {}) == []  # one config, no reference costs: nothing to say
    assert targets.figures([ROWS[-1]], REFERENCE) == []  # an error row


def test_goals_in_the_readme_table_after_the_results() -> None:
    figs = targets.figures(ROWS, REFERENCE)
    text = readme.markdown(ROWS, figs)
    results = readme.parse(text)  # the first table: the results, unchanged by the goals below
    assert {(r["scheme"], r["operation"]) for r in results} >= {("bip340", "sign/policy")}
    goals = readme.parse(text[text.index("| goal |") :])
    assert len(goals) == len(figs)
    frost = next(g for g in goals if g["goal"].startswith("FROST") and g["(n,t)"] == "(4,2)")
    assert (
        frost["measured"] == "1.75×" and frost["target"] == "≤ 1.50×" and frost["met"] == "**no**"
    )
    assert frost["from"] == "700 µs (nodes + gateway) vs 400 µs"
    ecdsa = next(g for g in goals if g["goal"].startswith("ECDSA"))
    assert ecdsa["measured"] == "120/s" and ecdsa["target"] == "≥ 300/s"


def test_reference_costs_measured_only_when_needed() -> None:
    assert targets.measure_reference([ROWS[3]]) == {}
    ref = targets.measure_reference(ROWS[:3])
    assert set(ref["frost_bip340_single_process_us"]) == {"4:2", "7:3"}
    assert all(v > 0 for v in ref["frost_bip340_single_process_us"].values())
    assert ref["ed25519_verify_us"] > 0
