"""`tholos bench`: drive local clusters and print throughput and latency.

For each (n, t) it starts a fresh local cluster (real processes, mutual TLS; or uses `--dir` of a
running one), then per scheme measures for `--duration` seconds each, with `--concurrency` requests
in flight from one aiohttp client:

- keygen/batch:  POST /v1/keys {"count": K}       (K keys per request, one batched DKG)
- keygen/single: POST /v1/keys                    (one key per request; concurrent requests are
                                                   micro-batched by the gateway)
- sign/batch:    POST /v1/sign with B messages    (many signatures per round trip)
- sign/single:   POST /v1/keys/{id}/sign          (one signature per request; micro-batched)
- */latency:     the single-request modes with `--latency-concurrency` (default 1) in flight

ops/s counts keys or signatures; latency is per HTTP request. Every line also gives the CPU time
per operation (µs) of the nodes (sum, and mean per node), the gateway and this client, sampled
right before and after its window (see bench/cpu.py): far less sensitive than ops/s to how much
CPU the shared VM gives us, though it still varies with the CPU's clock frequency; "each node"
lists every node's own figure. After the table, every goal of the performance issue that the run
measured, its figure beside its target (bench/targets.py); --json gives them under "targets" and
the in-process costs they compare with under "single_process".

`--wan` puts a relay in front of every node (bench/wan.py: three sites, 20 ms RTT between them,
1 ms inside, the gateway in site 0) and adds p95, the gateway's RPCs per operation, the round trips
of each request at one in flight and the p50 goal for that row.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from tholos.bench import cpu, plot, readme, round_schemes, targets, wan
from tholos.bench import policy as policy_bench

REFERENCE = {
    "source": "Virtual and Distributed HSM (published), 4 servers",
    "schnorr_keygen_ops": 48.76,
    "schnorr_sign_ops": 46.43,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configs", default="4:2,7:3", help="comma-separated n:t (default 4:2,7:3)")
    p.add_argument("--schemes", default="bip340,ed25519,secp256k1")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    p.add_argument(
        "--batch", type=int, default=128, help="signatures per batch request (default 128)"
    )
    p.add_argument("--keygen-batch", type=int, default=32, help="keys per batch keygen request")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    p.add_argument(
        "--latency-concurrency",
        type=int,
        default=1,
        help="requests in flight for the */latency modes (default 1)",
    )
    p.add_argument(
        "--modes",
        default="keygen/batch,keygen/single,keygen/latency,sign/batch,sign/single,sign/latency",
    )
    p.add_argument("--dir", type=Path, default=None, help="use this running cluster instead")
    p.add_argument(
        "--markdown", type=Path, default=None, help="also write the README's table to this file"
    )
    p.add_argument(
        "--update-readme",
        type=Path,
        default=None,
        metavar="README",
        help="rewrite the table between <!-- bench:begin --> and <!-- bench:end --> in README",
    )
    round_schemes.add_arguments(p)
    policy_bench.add_arguments(p)
    p.add_argument("--keep", action="store_true", help="keep the temporary cluster directories")
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="DIR",
        help="write PNG charts (throughput beside single-key baselines, latency) to DIR "
        "(needs matplotlib: the bench extra)",
    )
    p.add_argument(
        "--plot-from",
        type=Path,
        default=None,
        metavar="JSON",
        help="with --plot: chart this saved `tholos bench --json` output instead of running",
    )
    p.add_argument(
        "--wan",
        action="store_true",
        help="gateway-node links through loopback relays: three sites, 20 ms RTT between them, "
        "1 ms inside, the gateway in site 0 (skips the policy line)",
    )


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def _measure(
    concurrency: int,
    duration: float,
    op: Callable[[int], Awaitable[int]],
    total: int | None = None,
    cpu_pids: Mapping[str, int] | None = None,
    links: wan.WanLinks | None = None,
) -> dict[str, Any]:
    """Run `op` from `concurrency` workers for `duration` seconds, or for `total` requests when
    given (then `duration` is ignored); throughput, latency percentiles and, with `cpu_pids`
    (name -> PID of the nodes and gateway), CPU µs per operation; with `links` (the WAN relays),
    gateway→node round trips per operation."""
    lat: list[float] = []
    done = 0
    errors = 0
    stop = time.perf_counter() + duration
    counter = 0
    per_request = links if concurrency == 1 else None  # one in flight: turns belong to it
    request_turns: list[tuple[wan.Exchanges, wan.Exchanges]] = []

    async def worker() -> None:
        nonlocal done, errors, counter
        while counter < total if total is not None else time.perf_counter() < stop:
            counter += 1
            t0 = time.perf_counter()
            before = per_request.sample() if per_request else None
            try:
                n = await op(counter)  # not `done += await ...`: that loses concurrent updates
                done += n
                lat.append(time.perf_counter() - t0)
                if per_request and before is not None:
                    request_turns.append((before, per_request.sample()))
            except Exception as exc:
                errors += 1
                if errors < 3:
                    print(f"bench: request failed: {exc}", file=sys.stderr)

    cpu0 = cpu.sample(cpu_pids) if cpu_pids else None
    turns0 = links.sample() if links else None
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    cpu_res = cpu.per_op(cpu0, cpu.sample(cpu_pids), done) if cpu0 and cpu_pids else {}
    turns = wan.round_trips(turns0, links.sample(), done) if links and turns0 is not None else {}
    turns.update(wan.critical_path(request_turns))
    return {
        "ops_per_s": done / elapsed,
        "p50_ms": _pct(lat, 0.50) * 1000,
        "p95_ms": _pct(lat, 0.95) * 1000,
        "p99_ms": _pct(lat, 0.99) * 1000,
        "requests": len(lat),
        "errors": errors,
        "mean_ms": statistics.fmean(lat) * 1000 if lat else float("nan"),
        # 0%, 5%, ..., 100%: the distribution, for the latency chart (bench/plot.py)
        "latency_quantiles_ms": [_pct(lat, q / 20) * 1000 for q in range(21)] if lat else [],
        **cpu_res,
        **turns,
    }


async def bench_cluster(
    url: str,
    ctx: ssl.SSLContext,
    args: argparse.Namespace,
    n: int,
    t: int,
    pids: Mapping[str, int] | None = None,
    links: wan.WanLinks | None = None,
) -> list[dict[str, Any]]:
    import aiohttp

    measure = functools.partial(_measure, cpu_pids=pids, links=links)
    profile = links.profile if links else None
    out: list[dict[str, Any]] = []
    modes = args.modes.split(",")
    conn = aiohttp.TCPConnector(ssl=ctx, limit=0)
    async with aiohttp.ClientSession(url, connector=conn) as s:

        async def post(path: str, body: dict[str, Any]) -> Any:
            async with s.post(path, json=body) as r:
                data = await r.json()
                if r.status >= 300:
                    raise RuntimeError(f"HTTP {r.status}: {data}")
                return data

        async def get(path: str) -> Any:
            async with s.get(path) as r:
                return await r.json()

        for scheme in args.schemes.split(","):
            if scheme in round_schemes.ROUND_SCHEMES:  # ecdsa, bls12381, dise
                try:
                    rows = await round_schemes.bench_scheme(post, get, args, n, t, scheme, measure)
                except RuntimeError as exc:  # an HTTP error: report it, keep the other schemes
                    print(f"bench: {scheme} at ({n},{t}) stopped: {exc}", file=sys.stderr)
                    out.append({"n": n, "t": t, "scheme": scheme, "error": str(exc)})
                    continue
                for r in rows:
                    wan.annotate(r, profile)
                out += rows
                continue
            keys = (await post("/v1/keys", {"scheme": scheme, "count": 8}))["keys"]
            ids = [k["key_id"] for k in keys]
            # Warm up pools and connections.
            await post("/v1/sign", {"requests": [{"key_id": ids[0], "message": "00" * 32}] * 1})

            async def keygen_batch(i: int, scheme: str = scheme) -> int:
                r = await post("/v1/keys", {"scheme": scheme, "count": args.keygen_batch})
                return len(r["keys"])

            async def keygen_single(i: int, scheme: str = scheme) -> int:
                await post("/v1/keys", {"scheme": scheme})
                return 1

            async def sign_batch(i: int, ids: list[str] = ids) -> int:
                reqs = [
                    {"key_id": ids[(i + j) % len(ids)], "message": os.urandom(32).hex()}
                    for j in range(args.batch)
                ]
                r = await post("/v1/sign", {"requests": reqs})
                bad = [x for x in r["results"] if "signature" not in x]
                if bad:
                    raise RuntimeError(f"{len(bad)} signatures failed: {bad[0]}")
                return len(r["results"])

            async def sign_single(i: int, ids: list[str] = ids) -> int:
                await post(f"/v1/keys/{ids[i % len(ids)]}/sign", {"message": os.urandom(32).hex()})
                return 1

            ops: dict[str, Callable[[int], Awaitable[int]]] = {
                "keygen/batch": keygen_batch,
                "keygen/single": keygen_single,
                "keygen/latency": keygen_single,
                "sign/batch": sign_batch,
                "sign/single": sign_single,
                "sign/latency": sign_single,
            }
            for mode in modes:
                conc = args.latency_concurrency if mode.endswith("/latency") else args.concurrency
                res = await measure(conc, args.duration, ops[mode])
                row = {
                    "n": n,
                    "t": t,
                    "scheme": scheme,
                    "mode": mode,
                    "concurrency": conc,
                    "batch": args.batch
                    if mode == "sign/batch"
                    else args.keygen_batch
                    if mode == "keygen/batch"
                    else 1,
                    **res,
                }
                wan.annotate(row, profile)
                out.append(row)
                print(_fmt(row, links is not None), file=sys.stderr, flush=True)
    return out


def _fmt(r: dict[str, Any], over_wan: bool = False) -> str:
    return (
        f"| {r['n']} | {r['t']} | {r['scheme']} | {r['mode']} | {r['batch']} | {r['concurrency']} | "
        f"{r['ops_per_s']:.0f} | {r['p50_ms']:.1f} | {r.get('p95_ms', float('nan')):.1f} | "
        f"{r['p99_ms']:.1f} |"
        + (wan.cells(r) if over_wan else "")
        + cpu.each_cell(r)
        + cpu.cells(r)
    )


def table(all_rows: list[dict[str, Any]]) -> str:
    rows = [r for r in all_rows if "error" not in r]
    failed = [
        f"{r['scheme']} at ({r['n']},{r['t']}) stopped: {r['error']}"
        for r in all_rows
        if "error" in r
    ]
    over_wan = any("rpcs_per_op" in r for r in rows)
    lines = [
        "| n | t | scheme | operation | per request | in flight | ops/s | p50 ms | p95 ms | p99 ms |"
        + (wan.HEADER if over_wan else "")
        + " CPU µs/op each node |"
        + cpu.HEADER,
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|"
        + (wan.ALIGN if over_wan else "")
        + "---:|"
        + cpu.ALIGN,
        *(_fmt(r, over_wan) for r in rows),
        "",
        *failed,
        f"Published Virtual and Distributed HSM, 4 servers: Schnorr keygen "
        f"{REFERENCE['schnorr_keygen_ops']} op/s, sign {REFERENCE['schnorr_sign_ops']} op/s.",
        round_schemes.reference_line(),
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tholos.cluster import procs
    from tholos.cluster.layout import ClusterDir, init_cluster
    from tholos.transport.tls import client_ssl_context

    if getattr(args, "plot_from", None) is not None:
        if args.plot is None:
            print("bench: --plot-from needs --plot DIR", file=sys.stderr)
            return 2
        for path in plot.write_charts(json.loads(args.plot_from.read_text()), args.plot):
            print(f"bench: wrote {path}", file=sys.stderr)
        return 0
    rows: list[dict[str, Any]] = []
    wan_profile = wan.WanProfile() if getattr(args, "wan", False) else None
    wan_info: dict[str, Any] | None = None
    if wan_profile is not None and args.dir is not None:
        print("bench: --wan starts its own clusters; it cannot be used with --dir", file=sys.stderr)
        return 2
    if args.dir is not None:
        cd = ClusterDir(args.dir)
        m = cd.load()
        rows += asyncio.run(
            bench_cluster(
                m["gateway"],
                client_ssl_context(cd.client_tls),
                args,
                int(m["nodes"]),
                int(m["threshold"]),
                cpu.cluster_pids(cd),
            )
        )
    else:
        for spec in args.configs.split(","):
            n, t = (int(x) for x in spec.split(":"))
            root = Path(tempfile.mkdtemp(prefix=f"tholos-bench-{n}-{t}-"))
            cd = ClusterDir(root)
            try:
                init_cluster(root, n, t)
                with contextlib.ExitStack() as stack:
                    links = None
                    if wan_profile is not None:  # relays up and dialled before the gateway starts
                        links = stack.enter_context(wan.WanLinks(cd.gateway_config, wan_profile))
                        wan_info = links.describe()
                    stack.callback(procs.down, cd)
                    procs.up(cd, wait=60)
                    m = cd.load()
                    ctx = client_ssl_context(cd.client_tls)
                    pids = cpu.cluster_pids(cd)
                    rows += asyncio.run(bench_cluster(m["gateway"], ctx, args, n, t, pids, links))
            finally:
                if not args.keep:
                    shutil.rmtree(root, ignore_errors=True)
            if wan_profile is None:
                rows += policy_bench.run_config(n, t, args, _measure)  # the "with policy" line
    reference = targets.measure_reference(rows)  # in this process, right after the clusters
    goals = targets.figures(rows, reference)
    table_md = readme.markdown(rows, goals)
    if args.markdown is not None:
        args.markdown.write_text(table_md)
    if args.update_readme is not None:
        args.update_readme.write_text(readme.update(args.update_readme.read_text(), table_md))
    out: dict[str, Any] = {
        "results": rows,
        "targets": goals,
        "single_process": reference,
        "reference": REFERENCE,
        "load_average": os.getloadavg(),
    }
    if wan_info is not None:
        out["wan"] = wan_info
    if args.json or getattr(args, "plot", None) is not None:
        out["baselines"] = plot.cpu_baselines()
    if getattr(args, "plot", None) is not None:
        for path in plot.write_charts(out, args.plot):
            print(f"bench: wrote {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(out))
    else:
        print(table(rows))
        print("\nGoals, each figure beside its target (bench/targets.py):\n")
        print(targets.markdown(goals))
    return 0
