"""CPU per signature, governed (`sign/policy`) against plain (`sign/batch`), in one process.

4 nodes (t=2) and the gateway with its REST app, nodes reached through an in-memory transport
that still serialises every protobuf message: the work of `tholos bench` without sockets, TLS or
scheduling noise. Reports process CPU per signature, split by component:
  python src/tholos/bench/governed_cpu.py [--batches 20] [--batch 128] [--only governed] [--profile]
(--profile prints cProfile tables, PFILTER=regex restricts the first). It also counts the
Ed25519 verifications of user signatures the nodes make per signature, and their CPU. To compare with another
tree, run it with PYTHONPATH=OTHER/src, alternating runs: CPU time still moves with the load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.bench.policy import _prepare

try:
    from tholos.bench.policy import _batch
except ImportError:  # the tree before the bench client sent pre-encoded requests
    _batch = None  # type: ignore[assignment]
from tholos.cluster.governance_init import DEMO_USERS, make_genesis, write_user_key
from tholos.gateway.api import create_app
from tholos.gateway.requests import attach
from tholos.gateway.service import Gateway
from tholos.gateway.store import GatewayStore
from tholos.gateway.transport import InMemoryNodeTransport
from tholos.governance import ApprovalRequirement, Policy, Rule
from tholos.node import governance as node_gov
from tholos.node.barrier import Barrier
from tholos.node.service import NodeService
from tholos.node.store import NodeStore
from tholos.node.vault import KeyVault
from tholos.transport.e2e import Identity, generate_identity_secret

N, T = 4, 2
CPU: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)


@contextlib.contextmanager
def charge(name: str) -> Iterator[None]:
    start = time.process_time()
    try:
        yield
    finally:
        CPU[name] += time.process_time() - start


def count_ed25519_verifications() -> None:
    """Charge and count every user-signature check of the governance engine (libsodium's
    crypto_sign_open in governance/_keys.py): the work the policy itself asks of a node."""
    from tholos.governance import _keys

    namespace = vars(_keys)  # the module's globals: where _keys looks the function up
    inner = namespace["crypto_sign_open"]
    if getattr(inner, "counted", False):
        return

    def counted(signed: bytes, public_key: bytes) -> bytes:
        CALLS["ed25519 verifications"] += 1
        with charge("  of which Ed25519 verify"):
            return bytes(inner(signed, public_key))

    counted.counted = True  # type: ignore[attr-defined]
    namespace["crypto_sign_open"] = counted


class WireTransport(InMemoryNodeTransport):
    """In-memory, but every request and reply crosses as bytes (as over gRPC); node CPU charged."""

    async def _call(self, fn: Any, req: Any) -> Any:
        wire = req.SerializeToString()
        rep = await super()._call(lambda r: self._node(fn, type(req).FromString(wire)), req)
        return type(rep).FromString(rep.SerializeToString())

    def _node(self, fn: Callable[[Any], Any], req: Any) -> Any:
        with charge("node (all work)"):
            return fn(req)


def build(root: Path, governed: bool) -> tuple[Gateway, dict[int, NodeService]]:
    secrets = {i: generate_identity_secret() for i in range(1, N + 1)}
    roster = {i: Identity(i, s).public for i, s in secrets.items()}
    keys = {u: Ed25519PrivateKey.generate() for u in DEMO_USERS}
    policy = Policy(
        rules=(Rule(rule_id="bench", approvals=(ApprovalRequirement(group="treasury", count=1),)),)
    )
    genesis = make_genesis("bench-cluster", keys, policy=policy)
    (root / "genesis.json").write_text(genesis.model_dump_json())
    services = {}
    for i, s in secrets.items():
        d = root / f"node-{i}"
        d.mkdir()
        store = NodeStore(d / "node.db")
        svc = NodeService(
            Identity(i, s, dict(roster)), store, KeyVault(store, Barrier(os.urandom(32)), i), 10**6
        )
        settings = (
            node_gov.Settings(
                mode="governed",
                cluster_id="bench-cluster",
                genesis=root / "genesis.json",
                genesis_hash=genesis.document.digest(),
                n=N,
                t=T,
            )
            if governed
            else node_gov.Settings(mode="none", n=N)
        )
        svc.governance = node_gov.NodeGovernance(settings, d, svc.identity, dict(roster))
        services[i] = svc
    gw_dir = root / "gateway"
    gw_dir.mkdir()
    write_user_key(gw_dir / "audit.key", Ed25519PrivateKey.generate())
    gw = Gateway(
        {i: WireTransport(s) for i, s in services.items()},
        roster,
        GatewayStore(gw_dir / "gateway.db"),
        T,
        rpc_timeout=30.0,
    )
    attach(gw, gw_dir)
    gw._bench_keys = keys  # type: ignore[attr-defined]
    return gw, services


async def run(governed: bool, batches: int, batch: int, profile: bool) -> dict[str, float]:
    count_ed25519_verifications()
    CPU.clear()
    CALLS.clear()
    with tempfile.TemporaryDirectory(prefix="tholos-gcpu-") as tmp:
        gw, _ = build(Path(tmp), governed)
        app = create_app(lambda: gw)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=600
            ) as http,
        ):
            key_id = (await http.post("/v1/keys", json={"scheme": "bip340"})).json()["key_id"]
            total = (batches + 2) * batch
            if governed:
                pool = _prepare("bench-cluster", key_id, gw._bench_keys, total, 3600)  # type: ignore[attr-defined]
                bodies = [
                    _batch(pool[k : k + batch])
                    if isinstance(pool[0], bytes)
                    else json.dumps({"requests": pool[k : k + batch]}).encode()
                    for k in range(0, total, batch)
                ]
                path = "/v1/signing-requests/batch"
            else:
                bodies = [
                    json.dumps(
                        {
                            "requests": [
                                {"key_id": key_id, "message": os.urandom(32).hex()}
                                for _ in range(batch)
                            ]
                        }
                    ).encode()
                    for _ in range(batches + 2)
                ]
                path = "/v1/sign"
            for body in bodies[:2]:  # warm up: commitment pools, caches
                r = await http.post(
                    path, content=body, headers={"content-type": "application/json"}
                )
                assert r.status_code == 200, r.text
            CPU.clear()
            CALLS.clear()
            prof = cProfile.Profile() if profile else None
            start = time.process_time()
            if prof:
                prof.enable()
            for body in bodies[2:]:
                r = await http.post(
                    path, content=body, headers={"content-type": "application/json"}
                )
                assert r.status_code == 200, r.text[:500]
                res = r.json()["results"]
                ok = [x for x in res if x.get("status") == "signed" or x.get("signature")]
                assert len(ok) == batch, res[0]
            if prof:
                prof.disable()
            cpu = time.process_time() - start
    n_sigs = batches * batch
    out = {"total": cpu / n_sigs * 1e6}
    out.update({k: v / n_sigs * 1e6 for k, v in CPU.items()})
    out["gateway + client (rest)"] = out["total"] - out.get("node (all work)", 0.0)
    out["ed25519 verifications / sig"] = CALLS["ed25519 verifications"] / n_sigs
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(os.environ.get("PFILTER", ""), 60)
        pstats.Stats(prof).sort_stats("tottime").print_stats(35)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--only", choices=("plain", "governed"))
    a = ap.parse_args()
    for mode in ("plain", "governed"):
        if a.only and mode != a.only:
            continue
        runs = [
            asyncio.run(run(mode == "governed", a.batches, a.batch, a.profile))
            for _ in range(a.repeat)
        ]
        print(f"{mode}: CPU µs per signature (min of {a.repeat} runs of {a.batches}x{a.batch})")
        for k in runs[0]:
            print(
                f"  {k:28s} {min(r[k] for r in runs):8.1f}   runs: "
                + " ".join(f"{r[k]:.0f}" for r in runs)
            )


if __name__ == "__main__":
    main()
