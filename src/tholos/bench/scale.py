"""`python -m tholos.bench.scale`: does a node holding many keys sign as fast as one holding few?

Two local clusters of the same shape run side by side: "small" with `--small` keys and "big" with
`--keys` keys. Keys are seeded straight into every node's store while the clusters are down (a
trusted dealer splits each key, each node's own Barrier seals its share, the gateway gets the
public row, as `POST /v1/keys/import` would leave them): DKG for 100,000 keys takes too long on a
shared 2-core machine, and how the key got there does not change how it is stored or opened.

Measured: seeding time; start-up time of each cluster (`procs.up` until every node is up);
resident memory (VmRSS) of every node and the gateway after start-up and after signing; single
signatures (one in flight) alternating between the clusters so both see the same machine load,
p50/p95 and CPU µs per signature of each node with its signer process (bench/cpu.py); the big cluster signs with keys
drawn at random from all of its keys (each one opened for the first time). With `--addresses`:
a bitcoin wallet on a small-cluster key, that many BIP32 non-hardened receive addresses derived
in process by the code the REST route runs, a sample of them through REST, and the gateway
store's size before and after (addresses are derived on demand, never stored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tholos.bench import cpu

SEED_BATCH = 2000


def seed_keys(root: Path, scheme_name: str, count: int) -> list[str]:
    """Write `count` keys of `scheme_name` into the stopped cluster at `root`; returns their ids."""
    import uuid

    from tholos.cluster.directory import ClusterDir
    from tholos.crypto.hazmat.dealer import deal_key_shares
    from tholos.gateway.config import GatewayConfig
    from tholos.gateway.store import GatewayStore, KeyRow
    from tholos.node.config import NodeConfig
    from tholos.node.server import unseal
    from tholos.node.store import NodeStore
    from tholos.node.vault import KeyVault
    from tholos.schemes import SCHEMES

    cd = ClusterDir(root)
    m = cd.load()
    n, t = int(m["nodes"]), int(m["threshold"])
    scheme = SCHEMES[scheme_name]
    vaults = {}
    for i in range(1, n + 1):
        cfg = NodeConfig.load(cd.node_config(i))
        store = NodeStore(cfg.db)
        vaults[i] = KeyVault(store, unseal(cfg, store), i)
    gw_store = GatewayStore(GatewayConfig.load(cd.gateway_config).db)
    ids: list[str] = []
    try:
        for start in range(0, count, SEED_BATCH):
            per_node: dict[int, list[Any]] = {i: [] for i in vaults}
            rows = []
            for _ in range(min(SEED_BATCH, count - start)):
                key_id = uuid.uuid4().hex
                shares = deal_key_shares(scheme.group, None, t, range(1, n + 1))
                meta = {"imported": True, "participants": list(range(1, n + 1))}
                for sh in shares:
                    per_node[sh.identifier].append((key_id, scheme, sh, meta))
                public = shares[0].public
                rows.append(
                    KeyRow(
                        key_id,
                        scheme_name,
                        None,
                        scheme.public_key(public).hex(),
                        public.to_dict(),
                        meta,
                        time.time(),
                    )
                )
                ids.append(key_id)
            for i, records in per_node.items():
                vaults[i].store_shares(records)
                vaults[i]._cache.clear()  # the seeding process does not keep them
            gw_store.put_keys(rows)
            gw_store._cache.clear()
    finally:
        for v in vaults.values():
            v._store.close()
        gw_store.close()
    return ids


def _key_ids(c: Cluster) -> list[str]:
    """Every key id in the gateway store of a stopped cluster."""
    from tholos.gateway.config import GatewayConfig
    from tholos.gateway.store import GatewayStore

    store = GatewayStore(GatewayConfig.load(c.cd.gateway_config).db)
    try:
        return [str(r[0]) for r in store.db.execute("SELECT key_id FROM keys")]
    finally:
        store.close()


def rss_kib(pid: int) -> int:
    """Resident set size of `pid` in KiB (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ProcessLookupError(f"no VmRSS for process {pid}")


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a node's signer process), from /proc."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            out.append(int(p.name))
    return out


def cpu_sample(groups: dict[str, list[int]]) -> cpu.Sample:
    """CPU seconds of every named group of processes (a node with its signer), and the client's."""
    out = {name: sum(cpu.proc_cpu_seconds(pid) for pid in pids) for name, pids in groups.items()}
    out["client"] = time.process_time()
    return out


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


class Cluster:
    """One local cluster of the comparison: its directory, key ids, processes."""

    def __init__(self, name: str, n: int, t: int, reuse: Path | None = None) -> None:
        from tholos.cluster.directory import ClusterDir
        from tholos.cluster.layout import init_cluster

        self.name = name
        self.reused = reuse is not None
        self.root = reuse or Path(tempfile.mkdtemp(prefix=f"tholos-scale-{name}-"))
        if reuse is None:
            init_cluster(self.root, n, t)
        self.cd = ClusterDir(self.root)
        self.keys: list[str] = []
        self.pids: dict[str, int] = {}
        self.cpu_groups: dict[str, list[int]] = {}

    def up(self) -> float:
        """Start every process; seconds until the gateway sees every node up."""
        from tholos.cluster import procs

        t0 = time.perf_counter()
        procs.up(self.cd, wait=1800)
        took = time.perf_counter() - t0
        self.pids = cpu.cluster_pids(self.cd) or {}
        # a node's signer process does the share work: its CPU counts as the node's
        self.cpu_groups = {name: [pid, *child_pids(pid)] for name, pid in self.pids.items()}
        return took

    def wait_scanned(self, timeout: float = 1800) -> float:
        """Seconds until every node reports its start-up share scan done (shares_unchecked 0)."""
        from tholos.client import Client

        client = Client(self.cd.load()["gateway"], self.cd.client_tls)
        t0 = time.perf_counter()
        try:
            while time.perf_counter() - t0 < timeout:
                shares = client.get("/v1/cluster")["shares"]
                if all(s.get("unchecked_shares", 0) == 0 for s in shares.values()):
                    return time.perf_counter() - t0
                time.sleep(1.0)
        finally:
            client.close()
        raise TimeoutError(f"{self.name}: share scan not done after {timeout:.0f} s")

    def rss(self) -> dict[str, int]:
        """VmRSS of every process; a node's signer as "node-i-signer" (it holds the shares)."""
        out = {name: rss_kib(pid) for name, pid in self.pids.items()}
        for name, pids in self.cpu_groups.items():
            for j, pid in enumerate(pids[1:]):
                out[f"{name}-signer" + (f"-{j}" if j else "")] = rss_kib(pid)
        return out

    def down(self) -> None:
        from tholos.cluster import procs

        procs.down(self.cd)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


async def _sign_alternating(
    clusters: list[Cluster], pick: dict[str, Callable[[int], str]], signs: int
) -> dict[str, dict[str, Any]]:
    import aiohttp

    from tholos.transport.tls import client_ssl_context

    sessions = {}
    for c in clusters:
        conn = aiohttp.TCPConnector(ssl=client_ssl_context(c.cd.client_tls), limit=0)
        sessions[c.name] = aiohttp.ClientSession(c.cd.load()["gateway"], connector=conn)
    lat: dict[str, list[float]] = {c.name: [] for c in clusters}
    errors = {c.name: 0 for c in clusters}
    try:

        async def sign(c: Cluster, i: int) -> None:
            path = f"/v1/keys/{pick[c.name](i)}/sign"
            t0 = time.perf_counter()
            async with sessions[c.name].post(path, json={"message": os.urandom(32).hex()}) as r:
                await r.read()
                if r.status >= 300:
                    errors[c.name] += 1
                    return
            lat[c.name].append(time.perf_counter() - t0)

        for c in clusters:  # warm-up: connections, pools
            for i in range(5):
                await sign(c, i)
        lat = {c.name: [] for c in clusters}
        before = {c.name: cpu_sample(c.cpu_groups) for c in clusters}
        for i in range(signs):
            for c in clusters if i % 2 == 0 else clusters[::-1]:
                await sign(c, i)
        after = {c.name: cpu_sample(c.cpu_groups) for c in clusters}
    finally:
        for s in sessions.values():
            await s.close()
    out = {}
    for c in clusters:
        xs = lat[c.name]
        use = cpu.per_op(before[c.name], after[c.name], len(xs))
        use.pop("cpu_us_client", None)  # the client alternates between clusters
        out[c.name] = {
            "signatures": len(xs),
            "errors": errors[c.name],
            "p50_ms": _pct(xs, 0.5) * 1000,
            "p95_ms": _pct(xs, 0.95) * 1000,
            "mean_ms": statistics.fmean(xs) * 1000 if xs else float("nan"),
            **use,
        }
    return out


def derive_addresses(count: int, public_key: bytes, chain_code: bytes) -> dict[str, Any]:
    """`count` bitcoin p2tr receive addresses m/0/i of one wallet, derived as the REST route does
    (chains.bitcoin address()); rate and the last address."""
    from tholos.chains.base import WalletRef
    from tholos.chains.registry import chain_for

    chain = chain_for("bitcoin")
    assert chain is not None
    ref = WalletRef("bench", "bitcoin", "mainnet", "bip340", "p2tr", public_key, chain_code)
    t0, c0 = time.perf_counter(), time.process_time()
    last = None
    for i in range(count):
        last = chain.address(ref, i, change=False)
    wall, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    return {
        "addresses": count,
        "seconds": wall,
        "per_s": count / wall,
        "cpu_us_per_address": cpu_s * 1e6 / count,
        "last": {"index": last.index, "address": last.address} if last else None,
    }


def _db_bytes(db: Path) -> int:
    """The SQLite file and its WAL and shared-memory files."""
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())


async def _wallet_addresses(c: Cluster, count: int, sample: int) -> dict[str, Any]:
    from tholos.client import Client
    from tholos.gateway.config import GatewayConfig

    gw_db = GatewayConfig.load(c.cd.gateway_config).db
    client = Client(c.cd.load()["gateway"], c.cd.client_tls)
    try:
        w = client.post("/v1/wallets", {"chain": "bitcoin", "network": "mainnet"})
        from tholos.crypto import bip32

        node = bip32.ExtendedPublicKey.from_xpub(str(w["xpub"]))
        size_before = _db_bytes(gw_db)
        local = derive_addresses(count, node.key_bytes, node.chain_code)
        idx = sorted(random.sample(range(count), min(sample, count)))
        t0 = time.perf_counter()
        for i in idx:
            got = client.get(f"/v1/wallets/{w['wallet_id']}/addresses/{i}")
            assert got["index"] == i
        rest_s = time.perf_counter() - t0
        last = client.get(f"/v1/wallets/{w['wallet_id']}/addresses/{count - 1}")
        size_after = _db_bytes(gw_db)
    finally:
        client.close()
    return {
        **local,
        "rest_sample": len(idx),
        "rest_per_s": len(idx) / rest_s,
        "rest_last_matches": last["address"] == (local["last"] or {}).get("address"),
        "gateway_db_bytes_before": size_before,
        "gateway_db_bytes_after": size_after,
    }


def _scan_seconds(c: Cluster) -> float:
    """How long one node's start-up scan (open every sealed share) takes, run in this process
    on node 1's store while the cluster is down."""
    from tholos.node.config import NodeConfig
    from tholos.node.server import unseal
    from tholos.node.store import NodeStore
    from tholos.node.vault import KeyVault

    cfg = NodeConfig.load(c.cd.node_config(1))
    store = NodeStore(cfg.db)
    try:
        vault = KeyVault(store, unseal(cfg, store), 1)
        t0 = time.perf_counter()
        vault.scan()
        return time.perf_counter() - t0
    finally:
        store.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    n, t = (int(x) for x in args.config.split(":"))
    small = Cluster("small", n, t, args.small_dir)
    big = Cluster("big", n, t, args.big_dir)
    out: dict[str, Any] = {"config": {"n": n, "t": t, "scheme": args.scheme}}
    try:
        for c, count in ((small, args.small), (big, args.keys)):
            if c.reused:  # seeded by an earlier run (--keep)
                c.keys = _key_ids(c)
                out[c.name] = {"keys": len(c.keys), "reused": str(c.root)}
                continue
            t0 = time.perf_counter()
            c.keys = seed_keys(c.root, args.scheme, count)
            out[c.name] = {"keys": count, "seed_s": time.perf_counter() - t0}
            print(f"scale: seeded {count} keys in {out[c.name]['seed_s']:.0f} s", file=sys.stderr)
            if args.scan:
                out[c.name]["scan_s_node1"] = _scan_seconds(c)
        for c in (small, big):
            out[c.name]["load_before_up"] = os.getloadavg()
            out[c.name]["startup_s"] = c.up()
            out[c.name]["rss_kib_after_start"] = c.rss()
            print(f"scale: {c.name} up in {out[c.name]['startup_s']:.1f} s", file=sys.stderr)
        for c in (small, big):  # sign in the steady state: the background scan is done
            out[c.name]["scan_done_s_after_up"] = c.wait_scanned()
            out[c.name]["rss_kib_after_scan"] = c.rss()
        rng = random.Random(7)
        pick = {
            "small": lambda i: small.keys[i % len(small.keys)],
            "big": lambda i: big.keys[rng.randrange(len(big.keys))],
        }
        load0 = os.getloadavg()
        signed = asyncio.run(_sign_alternating([small, big], pick, args.signs))
        out["sign_load"] = [load0, os.getloadavg()]
        for c in (small, big):
            out[c.name]["sign"] = signed[c.name]
            out[c.name]["rss_kib_after_sign"] = c.rss()
        out["p50_ratio_big_over_small"] = signed["big"]["p50_ms"] / signed["small"]["p50_ms"]
        if args.addresses:
            out["addresses"] = asyncio.run(
                _wallet_addresses(small, args.addresses, args.address_sample)
            )
    finally:
        for c in (small, big):
            c.down()
            if not args.keep and not c.reused:
                c.remove()
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="4:2", help="n:t of both clusters (default 4:2)")
    p.add_argument("--scheme", default="bip340", help="scheme of the seeded keys (default bip340)")
    p.add_argument("--keys", type=int, default=100_000, help="keys in the big cluster")
    p.add_argument("--small", type=int, default=10, help="keys in the small cluster")
    p.add_argument("--signs", type=int, default=300, help="signatures per cluster (alternating)")
    p.add_argument(
        "--addresses", type=int, default=0, help="also derive this many wallet addresses (0: no)"
    )
    p.add_argument("--address-sample", type=int, default=500, help="of them, fetched over REST")
    p.add_argument(
        "--scan", action="store_true", help="also time one node's share scan in this process"
    )
    p.add_argument("--keep", action="store_true", help="keep the cluster directories")
    p.add_argument("--small-dir", type=Path, help="reuse this seeded small cluster (from --keep)")
    p.add_argument("--big-dir", type=Path, help="reuse this seeded big cluster (from --keep)")
    p.add_argument("--json", type=Path, default=None, help="write the results here too")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tholos.bench.scale", description=__doc__)
    add_arguments(p)
    args = p.parse_args(argv)
    res = run(args)
    text = json.dumps(res, indent=1)
    if args.json is not None:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
