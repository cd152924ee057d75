"""The "with policy" line of `tholos bench`: governed signing, approvals checked by every node.

For each (n, t) it starts a governed cluster (`cluster init --governance`), adopts a policy of one
rule "one approval from treasury" (no velocity limit), creates a bip340 key, signs each request
with the initiator's key and one approver's key beforehand (that is the users' devices' work, not
the cluster's), then measures `POST /v1/signing-requests/batch` with `--batch` requests per call
and `--concurrency` calls in flight. Every signer verifies the initiator's signature, the payload
against the intent, the approval, the policy, and records the request in its journal and audit
chain before its share leaves. Compare with the `sign/batch` line of the same n, t and scheme.

Once per run it also adds the `node/parse+policy` line per chain (bench/chain_policy.py): the CPU a
node spends on one chain transaction request before it reserves (initiator signature, its own
parse of the payload held against the declared intent, the policy), measured in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import secrets
import shutil
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.bench import cpu
from tholos.bench.round_schemes import Measure

MODE = "sign/policy"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-policy-line",
        dest="policy_line",
        action="store_false",
        help="skip the governed 'with policy' signing line",
    )
    p.add_argument(
        "--no-chain-line",
        dest="chain_line",
        action="store_false",
        help="skip the per-chain node parse+policy line (2-in/2-out PSBT, ERC-20, Solana)",
    )


_chain_line_done = False


def chain_line(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The per-chain `node/parse+policy` rows, the first time a run asks for them."""
    global _chain_line_done
    if _chain_line_done or not getattr(args, "chain_line", True):
        return []
    _chain_line_done = True
    from tholos.bench.chain_policy import measure as measure_chains

    return measure_chains()


def _prepare(
    cluster_id: str, key_id: str, keys: dict[str, Ed25519PrivateKey], count: int, lifetime: int
) -> list[bytes]:
    """`count` signed and approved requests, each as the JSON of one batch item."""
    from tholos.governance import approve
    from tholos.governance.request_builder import build_request

    out = []
    now = int(time.time())
    for _ in range(count):
        req = build_request(
            cluster_id,
            "initiator",
            keys["initiator"],
            key_id=key_id,
            chain="raw",
            asset="RAW",
            destination="addr-bench",
            amount=1,
            data=os.urandom(32),
            request_id=secrets.token_hex(12),
            lifetime=lifetime,
            now=now,
        )
        appr = approve(req, "approver-1", keys["approver-1"])
        # Encoded here too: what a user's device hands over is the signed request's bytes.
        out.append(
            b'{"request":'
            + req.model_dump_json().encode()
            + b',"approvals":['
            + appr.model_dump_json().encode()
            + b"]}"
        )
    return out


async def bench_governed(
    url: str,
    ctx: ssl.SSLContext,
    root: Path,
    args: argparse.Namespace,
    n: int,
    t: int,
    measure: Measure,
) -> list[dict[str, Any]]:
    import aiohttp

    from tholos.cluster.governance_init import DEMO_USERS, user_key_file
    from tholos.governance import (
        ApprovalRequirement,
        GovernanceDocument,
        Policy,
        Rule,
        SignedDocument,
        read_user_key,
        sign_document,
    )

    keys = {u: read_user_key(user_key_file(root, u)) for u in DEMO_USERS}
    conn = aiohttp.TCPConnector(ssl=ctx, limit=0)
    async with aiohttp.ClientSession(url, connector=conn) as s:

        async def call(method: str, path: str, body: Any = None) -> Any:
            raw = {"data": body} if isinstance(body, bytes) else {"json": body}
            headers = {"content-type": "application/json"}
            async with s.request(method, path, headers=headers, **raw) as r:
                data = await r.json()
                if r.status >= 300:
                    raise RuntimeError(f"HTTP {r.status}: {data}")
                return data

        state = await call("GET", "/v1/governance")
        current = GovernanceDocument.model_validate_json(json.dumps(state["document"]["document"]))
        policy = Policy(
            rules=(
                Rule(
                    rule_id="bench",
                    approvals=(ApprovalRequirement(group="treasury", count=1),),
                ),
            )
        )
        doc = current.model_copy(
            update={
                "kind": "governance",
                "version": current.version + 1,
                "prev_hash": current.digest().hex(),
                "issued_at": int(time.time()),
                "policy": policy,
            }
        )
        doc = GovernanceDocument.model_validate_json(doc.model_dump_json())
        signed = SignedDocument(
            document=doc,
            signatures=tuple(sign_document(doc, a, keys[a]) for a in ("admin-1", "admin-2")),
        )
        res = await call("POST", "/v1/governance/documents", signed.model_dump(mode="json"))
        if res["adopted_by"] != n:
            raise RuntimeError(f"bench policy not adopted everywhere: {res}")
        key_id = (await call("POST", "/v1/keys", {"scheme": "bip340"}))["key_id"]
        cluster_id = current.cluster_id
        # Requests are signed by the users beforehand (their devices' work, not the cluster's).
        expected = int(args.duration * 4000) + args.batch * args.concurrency
        loop = asyncio.get_running_loop()
        pool = await loop.run_in_executor(None, _prepare, cluster_id, key_id, keys, expected, 3600)
        await call("POST", "/v1/signing-requests/batch", _batch(pool[:2]))
        cursor = 2

        async def governed_batch(i: int) -> int:
            nonlocal cursor
            chunk = pool[cursor : cursor + args.batch]
            cursor += args.batch
            if len(chunk) < args.batch:
                raise RuntimeError("bench ran out of prepared requests")
            r = await call("POST", "/v1/signing-requests/batch", _batch(chunk))
            bad = [x for x in r["results"] if x["status"] != "signed"]
            if bad:
                raise RuntimeError(f"{len(bad)} governed requests not signed: {bad[0]}")
            return len(r["results"])

        res_m = await measure(args.concurrency, args.duration, governed_batch)
    return [
        {
            "n": n,
            "t": t,
            "scheme": "bip340",
            "mode": MODE,
            "concurrency": args.concurrency,
            "batch": args.batch,
            **res_m,
        }
    ]


def _batch(items: list[bytes]) -> bytes:
    return b'{"requests":[' + b",".join(items) + b"]}"


def run_config(
    n: int,
    t: int,
    args: argparse.Namespace,
    measure: Measure,
) -> list[dict[str, Any]]:
    """Start a governed cluster for (n, t), measure, stop it."""
    from tholos.cluster import procs
    from tholos.cluster.layout import ClusterDir, init_cluster
    from tholos.transport.tls import client_ssl_context

    rows = chain_line(args)
    if not getattr(args, "policy_line", True) or "bip340" not in args.schemes.split(","):
        return rows
    root = Path(tempfile.mkdtemp(prefix=f"tholos-bench-policy-{n}-{t}-"))
    cd = ClusterDir(root)
    try:
        init_cluster(root, n, t, governance=True)
        procs.up(cd, wait=60)
        m = cd.load()
        measure_cpu = functools.partial(measure, cpu_pids=cpu.cluster_pids(cd))
        ctx = client_ssl_context(cd.client_tls)
        return rows + asyncio.run(bench_governed(m["gateway"], ctx, root, args, n, t, measure_cpu))
    finally:
        procs.down(cd)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
