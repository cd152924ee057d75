"""The performance goals of `tholos bench`, each figure beside its target, from one run's rows.

`figures(rows, reference)` turns the rows of a run (and the in-process costs measured in the same
run, `measure_reference`) into one line per goal:

- per-node CPU per operation at (7,3) against (4,2): ratio ≤ 1.5×, every scheme and operation;
- round trips per signature at one request in flight over the WAN profile: 1;
- sign p50 over the WAN ≤ 1 RTT + 5 ms, keygen p50 ≤ its round trips × RTT + 10 ms;
- sustained ECDSA (presignatures generated while signing) at (4,2) ≥ 300/s;
- FROST: cluster CPU per batched BIP340 signature (all nodes with their signers + gateway) ≤ 1.5×
  the single-process CPU of the same protocol (t commits, t shares, aggregation with its check);
- governance: the nodes' extra CPU per governed signature (sign/policy − sign/batch) ≤ 1.5× the
  Ed25519 verifications the policy makes them do (each of the t signers checks the initiator's
  signature and every approval).

A goal whose rows were not measured in the run is left out, not guessed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

PER_NODE_RATIO = 1.5
FROST_RATIO = 1.5
GOVERNANCE_RATIO = 1.5
ECDSA_SUSTAINED_PER_S = 300.0
SIGN_ROUND_TRIPS = 1.0
BENCH_POLICY_APPROVALS = 1  # bench/policy.py's rule: one approval from treasury

Figure = dict[str, Any]


def frost_single_process_us(t: int, n: int, iterations: int = 200) -> float:
    """CPU µs of one BIP340 FROST signature in this process at (t, n): what the cluster's
    protocol costs without processes, RPCs or storage (bench/frost_micro.py, CPU clock)."""
    from tholos.bench.frost_micro import bench_frost
    from tholos.crypto.frost.bip340 import FROST_BIP340

    r = bench_frost(FROST_BIP340, t, n, iterations, clock=time.process_time)
    return float(r["cpu_per_signature_us"])


def ed25519_verify_us(iterations: int = 2000) -> float:
    """CPU µs of one Ed25519 verification as the governance engine makes it (libsodium's
    crypto_sign_open over a tag and a 32-byte digest, governance/_keys.py)."""
    from nacl.bindings import crypto_sign_open
    from nacl.signing import SigningKey

    sk = SigningKey.generate()
    message = b"tholos-bench-initiation" + os.urandom(32)
    signed = bytes(sk.sign(message))
    pk = bytes(sk.verify_key)
    start = time.process_time()
    for _ in range(iterations):
        crypto_sign_open(signed, pk)
    return (time.process_time() - start) / iterations * 1e6


def measure_reference(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The in-process costs the FROST and governance goals compare with, measured now (same
    run, same machine state as the cluster rows): only those the rows need."""
    rows = list(rows)
    out: dict[str, Any] = {}
    frost = sorted(
        {
            (int(r["n"]), int(r["t"]))
            for r in rows
            if r.get("scheme") == "bip340" and r.get("mode") == "sign/batch" and "cpu_us_nodes" in r
        }
    )
    if frost:
        out["frost_bip340_single_process_us"] = {
            f"{n}:{t}": frost_single_process_us(t, n) for n, t in frost
        }
    if any(r.get("mode") == "sign/policy" and "cpu_us_nodes" in r for r in rows):
        out["ed25519_verify_us"] = ed25519_verify_us()
    return out


def _figure(
    goal: str, config: str, measured: float, target: float, unit: str, most: bool
) -> Figure:
    met = measured <= target if most else measured >= target
    return {
        "goal": goal,
        "config": config,
        "measured": measured,
        "target": target,
        "unit": unit,
        "bound": "≤" if most else "≥",
        "met": met,
    }


def figures(rows: Iterable[Mapping[str, Any]], reference: Mapping[str, Any]) -> list[Figure]:
    """One figure per goal and measured line (see the module docstring)."""
    good = [r for r in rows if "error" not in r and str(r.get("n", "")).isdigit()]
    by = {(str(r["scheme"]), str(r["mode"]), int(r["n"]), int(r["t"])): r for r in good}
    out: list[Figure] = []
    # Per-node CPU (7,3) vs (4,2)
    for (scheme, mode, n, t), r in by.items():
        if (n, t) != (4, 2) or "cpu_us_per_node" not in r:
            continue
        big = by.get((scheme, mode, 7, 3))
        if big is None or "cpu_us_per_node" not in big or not r["cpu_us_per_node"]:
            continue
        ratio = float(big["cpu_us_per_node"]) / float(r["cpu_us_per_node"])
        out.append(
            _figure(
                f"per-node CPU {scheme} {mode} (7,3)/(4,2)", "", ratio, PER_NODE_RATIO, "×", True
            )
        )
    # Over the WAN: round trips and p50
    for (scheme, mode, n, t), r in by.items():
        config = f"({n},{t})"
        if mode.startswith("sign/") and "round_trips_p50" in r:
            out.append(
                _figure(
                    f"round trips per signature {scheme} {mode}",
                    config,
                    float(r["round_trips_p50"]),
                    SIGN_ROUND_TRIPS,
                    "round trips",
                    True,
                )
            )
        target = r.get("p50_target_ms")
        if target is not None:
            kind = (
                "keygen p50 ≤ rounds×RTT + 10 ms"
                if mode.startswith("keygen/")
                else "p50 ≤ 1 RTT + 5 ms"
            )
            out.append(
                _figure(
                    f"WAN {kind}: {scheme} {mode}",
                    config,
                    float(r["p50_ms"]),
                    float(target),
                    "ms",
                    True,
                )
            )
    # ECDSA sustained
    for (scheme, mode, n, t), r in by.items():
        if scheme == "ecdsa" and mode == "presign/sustained" and (n, t) == (4, 2):
            out.append(
                _figure(
                    "ECDSA sustained (presignatures while signing)",
                    f"({n},{t})",
                    float(r["ops_per_s"]),
                    ECDSA_SUSTAINED_PER_S,
                    "/s",
                    False,
                )
            )
    # FROST close to its crypto
    single = reference.get("frost_bip340_single_process_us", {})
    for (scheme, mode, n, t), r in by.items():
        base = single.get(f"{n}:{t}")
        if scheme == "bip340" and mode == "sign/batch" and base and "cpu_us_nodes" in r:
            cluster = float(r["cpu_us_nodes"]) + float(r["cpu_us_gateway"])
            f = _figure(
                "FROST BIP340 cluster CPU / single-process CPU per signature",
                f"({n},{t})",
                cluster / float(base),
                FROST_RATIO,
                "×",
                True,
            )
            f["detail"] = f"{cluster:.0f} µs (nodes + gateway) vs {float(base):.0f} µs"
            out.append(f)
    # Governance that costs its signatures
    verify_us = reference.get("ed25519_verify_us")
    for (scheme, mode, n, t), r in by.items():
        plain = by.get((scheme, "sign/batch", n, t))
        if mode != "sign/policy" or not verify_us or plain is None or "cpu_us_nodes" not in r:
            continue
        if "cpu_us_nodes" not in plain:
            continue
        extra = float(r["cpu_us_nodes"]) - float(plain["cpu_us_nodes"])
        verifications = t * (1 + BENCH_POLICY_APPROVALS)
        cost = verifications * float(verify_us)
        f = _figure(
            "governance: nodes' extra CPU / their Ed25519 verifications per signature",
            f"({n},{t})",
            extra / cost,
            GOVERNANCE_RATIO,
            "×",
            True,
        )
        f["detail"] = (
            f"{extra:.0f} µs extra vs {verifications} verifications × {float(verify_us):.0f} µs"
        )
        out.append(f)
    return out


def _value(f: Mapping[str, Any]) -> str:
    v = float(f["measured"])
    unit = str(f["unit"])
    if unit == "×":
        return f"{v:.2f}×"
    if unit == "ms":
        return f"{v:.1f} ms"
    if unit == "/s":
        return f"{v:,.0f}/s"
    return f"{v:g} {unit.removesuffix('s') if v == 1 else unit}"


def _target(f: Mapping[str, Any]) -> str:
    t = float(f["target"])
    unit = str(f["unit"])
    shown = (
        f"{t:.2f}×"
        if unit == "×"
        else f"{t:.1f} ms"
        if unit == "ms"
        else f"{t:,.0f}/s"
        if unit == "/s"
        else f"{t:g} {unit.removesuffix('s') if t == 1 else unit}"
    )
    return f"{f['bound']} {shown}"


def markdown(figs: Iterable[Mapping[str, Any]]) -> str:
    """The goals as a markdown table: goal, (n,t), measured, target, met, how it was computed."""
    lines = [
        "| goal | (n,t) | measured | target | met | from |",
        "|---|---|---:|---:|---|---|",
    ]
    for f in figs:
        lines.append(
            f"| {f['goal']} | {f['config']} | {_value(f)} | {_target(f)} | "
            f"{'yes' if f['met'] else '**no**'} | {f.get('detail', '')} |"
        )
    return "\n".join(lines) + "\n"
