"""`tholos soak`: mixed load at a set rate for minutes, counting failed and lost requests.

Open loop: request i is sent at start + i/rate whatever happened to the others, so a slow
cluster shows as growing latency and losses rather than as a lower offered rate. The mix (one
per draw, seeded): a single signature with a key of each scheme, a 16-signature FROST batch, a
DiSE encrypt-then-decrypt of 1 KiB, and now and then a new key. Every answer is checked
independently (libsecp256k1 for BIP340 and ECDSA, libsodium for Ed25519, blst for BLS; the
FROST-secp256k1 suite's own check, as no other verifier exists) before it counts as ok.

Outcomes: ok; failed (an HTTP error: the error code is counted); lost (no answer within
`--timeout`, or the connection broke); wrong (an answer that does not verify — never expected);
shed (the client had `--max-in-flight` requests open and did not send). Without `--rate` the
rate is `--peak-fraction` (default 0.8) of the peak measured closed-loop for `--calibrate` s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import ssl
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tholos.bench import cpu

FROST_SCHEMES = ("bip340", "ed25519", "secp256k1")
DEFAULT_SCHEMES = "bip340,ed25519,secp256k1,ecdsa,bls12381,dise"
BATCH = 16
KEYGEN_WEIGHT = 0.02


class Wrong(Exception):
    """An answer that came back but does not verify."""


class HttpError(Exception):
    """An error answer: its status and the envelope's code (and message, for setup errors)."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"HTTP {status} {code} {message}".strip())
        self.status = status
        self.code = code


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, required=True, help="how long to drive load")
    p.add_argument("--rate", type=float, default=None, help="requests/s (default: measured)")
    p.add_argument(
        "--peak-fraction",
        type=float,
        default=0.8,
        help="without --rate: this fraction of the measured closed-loop peak (default 0.8)",
    )
    p.add_argument("--calibrate", type=float, default=10.0, help="seconds to measure the peak")
    p.add_argument("--schemes", default=DEFAULT_SCHEMES)
    p.add_argument("--nodes", type=int, default=4, help="nodes of the temporary cluster")
    p.add_argument("--threshold", type=int, default=2, help="threshold of the temporary cluster")
    p.add_argument("--dir", type=Path, default=None, help="use this running cluster instead")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a request is lost")
    p.add_argument("--max-in-flight", type=int, default=512)
    p.add_argument("--seed", type=int, default=1)


@dataclass
class Tally:
    """Outcomes and latencies of one window (a minute, or the whole run)."""

    sent: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    by_op: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    op_latencies: dict[str, list[float]] = field(default_factory=dict)

    def add(self, op: str, outcome: str, seconds: float, code: str = "") -> None:
        self.outcomes[outcome] += 1
        self.by_op[f"{op}:{outcome}"] += 1
        if code:
            self.codes[code] += 1
        if outcome == "ok":
            self.latencies.append(seconds)
            self.op_latencies.setdefault(op, []).append(seconds)

    def summary(self) -> dict[str, Any]:
        def pct(xs: list[float], q: float) -> float | None:
            xs = sorted(xs)
            return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 2) if xs else None

        lat = self.latencies
        return {
            "sent": self.sent,
            **{k: self.outcomes.get(k, 0) for k in ("ok", "failed", "lost", "wrong", "shed")},
            "error_codes": dict(self.codes),
            "by_operation": dict(sorted(self.by_op.items())),
            "p50_ms": pct(lat, 0.50),
            "p95_ms": pct(lat, 0.95),
            "p99_ms": pct(lat, 0.99),
            "latency_ms_by_operation": {
                op: {"p50": pct(xs, 0.5), "p99": pct(xs, 0.99)}
                for op, xs in sorted(self.op_latencies.items())
            },
        }


def _verify(scheme: str, message: bytes, out: dict[str, Any], public_key: bytes) -> None:
    """Raise `Wrong` unless `out` (a sign answer) carries a valid signature under `public_key`."""
    import nacl.exceptions
    import nacl.signing
    from coincurve import PublicKey, PublicKeyXOnly

    from tholos.crypto.errors import CryptoError

    sig = bytes.fromhex(out["signature"])
    try:
        if scheme == "bip340":
            ok = PublicKeyXOnly(public_key).verify(sig, message)
        elif scheme == "ed25519":
            nacl.signing.VerifyKey(public_key).verify(message, sig)
            ok = True
        elif scheme == "secp256k1":
            from tholos.crypto.frost.suites import FROST_SECP256K1_SHA256

            FROST_SECP256K1_SHA256.verify(message, sig, public_key)
            ok = True
        elif scheme == "ecdsa":
            recoverable = sig + bytes([int(out["recovery_id"])])
            ok = PublicKey.from_signature_and_message(recoverable, message, hasher=None).format(
                compressed=True
            ) == PublicKey(public_key).format(compressed=True)
        elif scheme == "bls12381":
            from tholos.crypto.bls import basic

            basic.verify(public_key, message, sig)
            ok = True
        else:
            raise ValueError(scheme)
    except (nacl.exceptions.BadSignatureError, CryptoError, ValueError) as exc:
        raise Wrong(f"{scheme} signature does not verify") from exc
    if not ok:
        raise Wrong(f"{scheme} signature does not verify")


Post = Callable[[str, dict[str, Any]], Awaitable[Any]]


class Mix:
    """The operations drawn by the load, over keys made at the start."""

    def __init__(self, post: Post, get: Callable[[str], Awaitable[Any]], schemes: list[str]):
        self.post = post
        self.get = get
        self.schemes = schemes
        self.keys: dict[str, tuple[str, bytes]] = {}  # scheme -> (key id, public key)
        self.dise_public: Any = None

    async def setup(self) -> None:
        from tholos.crypto.keys import PublicKeyPackage

        for scheme in self.schemes:
            key = await self.post("/v1/keys", {"scheme": scheme})
            key_id = key["key_id"]
            info = await self.get(f"/v1/keys/{key_id}")
            if scheme == "dise":
                self.dise_public = PublicKeyPackage.from_dict(info["public_key_package"])
            self.keys[scheme] = (key_id, b"")
        for scheme in self.schemes:  # the public key as signatures report it, checked once
            if scheme != "dise":
                msg = os.urandom(32)
                key_id, _ = self.keys[scheme]
                out = await self.post(f"/v1/keys/{key_id}/sign", {"message": msg.hex()})
                pub = bytes.fromhex(out["public_key"])
                _verify(scheme, msg, out, pub)
                self.keys[scheme] = (key_id, pub)

    def names(self) -> list[str]:
        ops = [f"sign/{s}" for s in self.schemes if s != "dise"]
        if any(s in FROST_SCHEMES for s in self.schemes):
            ops.append("sign-batch")
        if "dise" in self.schemes:
            ops.append("dise/roundtrip")
        return ops

    def draw(self, rnd: random.Random) -> str:
        if rnd.random() < KEYGEN_WEIGHT:
            return "keygen"
        return rnd.choice(self.names())

    async def run(self, op: str, rnd: random.Random) -> None:
        if op == "keygen":
            scheme = rnd.choice([s for s in self.schemes if s != "dise"] or self.schemes)
            await self.post("/v1/keys", {"scheme": scheme})
        elif op.startswith("sign/"):
            scheme = op.split("/", 1)[1]
            key_id, pub = self.keys[scheme]
            msg = os.urandom(32)
            out = await self.post(f"/v1/keys/{key_id}/sign", {"message": msg.hex()})
            _verify(scheme, msg, out, pub)
        elif op == "sign-batch":
            scheme = rnd.choice([s for s in self.schemes if s in FROST_SCHEMES])
            key_id, pub = self.keys[scheme]
            msgs = [os.urandom(32) for _ in range(BATCH)]
            body = {"requests": [{"key_id": key_id, "message": m.hex()} for m in msgs]}
            out = await self.post("/v1/sign", body)
            results = out["results"]
            if len(results) != BATCH:
                raise Wrong(f"batch of {BATCH} answered {len(results)} results")
            for m, r in zip(msgs, results, strict=True):
                if "signature" not in r or r["signature"] is None:
                    code = (r.get("error") or {}).get("code", "sign_failed")
                    raise HttpError(200, str(code))
                _verify(scheme, m, r, pub)
        elif op == "dise/roundtrip":
            await self._dise_roundtrip()
        else:
            raise ValueError(op)

    async def _dise_roundtrip(self) -> None:
        from tholos.crypto import dise

        key_id, _ = self.keys["dise"]
        public = self.dise_public
        data = os.urandom(1024)

        async def evaluate(req: Any) -> list[Any]:
            body = {"alpha": req.alpha.hex(), "encryptor": req.encryptor, "purpose": req.purpose}
            r = await self.post(f"/v1/keys/{key_id}/evaluate", body)
            return [dise.PartialEval.from_dict(p) for p in r["partials"]]

        ctx, req = dise.encrypt_begin(public, "soak", data)
        ct = dise.encrypt_finish(public, ctx, await evaluate(req))
        dreq = dise.decrypt_begin(public, ct)
        if dise.decrypt_finish(public, ct, await evaluate(dreq)) != data:
            raise Wrong("DiSE decrypt(encrypt(x)) != x")


async def _one(mix: Mix, op: str, rnd: random.Random, timeout: float, *tallies: Tally) -> None:
    import aiohttp

    t0 = time.perf_counter()
    outcome, code = "ok", ""
    try:
        await asyncio.wait_for(mix.run(op, rnd), timeout)
    except HttpError as exc:
        outcome, code = "failed", exc.code
    except Wrong as exc:
        outcome, code = "wrong", str(exc)
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        outcome = "lost"
    seconds = time.perf_counter() - t0
    for t in tallies:
        t.add(op, outcome, seconds, code)


async def _calibrate(mix: Mix, seconds: float, seed: int, timeout: float) -> float:
    """Closed-loop requests/s of the mix with 16 in flight."""
    tally = Tally()
    stop = time.perf_counter() + seconds
    rnd = random.Random(seed)

    async def worker() -> None:
        while time.perf_counter() < stop:
            await _one(mix, mix.draw(rnd), rnd, timeout, tally)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(16)))
    return tally.outcomes["ok"] / (time.perf_counter() - t0)


async def drive(
    url: str, ctx: ssl.SSLContext, args: argparse.Namespace, pids: Any
) -> dict[str, Any]:
    import aiohttp

    conn = aiohttp.TCPConnector(ssl=ctx, limit=0)
    async with aiohttp.ClientSession(url, connector=conn) as s:

        async def post(path: str, body: dict[str, Any]) -> Any:
            async with s.post(path, json=body) as r:
                data = await r.json(content_type=None)
                if r.status >= 300:
                    err = data.get("error", {}) if isinstance(data, dict) else {}
                    code, message = str(err.get("code", r.status)), str(err.get("message", ""))
                    raise HttpError(r.status, code, f"{path}: {message}")
                return data

        async def get(path: str) -> Any:
            async with s.get(path) as r:
                return await r.json(content_type=None)

        mix = Mix(post, get, args.schemes.split(","))
        await mix.setup()
        peak = None
        rate = args.rate
        if rate is None:
            peak = await _calibrate(mix, args.calibrate, args.seed, args.timeout)
            rate = max(0.1, peak * args.peak_fraction)
        print(
            f"soak: {rate:.1f} requests/s for {args.minutes} min"
            + (f" ({args.peak_fraction:.0%} of a {peak:.1f}/s peak)" if peak else ""),
            file=sys.stderr,
            flush=True,
        )
        total = Tally()
        minute = Tally()
        rnd = random.Random(args.seed + 1)
        tasks: set[asyncio.Task[None]] = set()
        cpu0 = cpu.sample(pids) if pids else None
        start = time.perf_counter()
        end = start + args.minutes * 60
        next_report = start + 60
        i = 0
        while True:
            now = time.perf_counter()
            if now >= next_report:
                print(_progress(round((now - start) / 60), minute), file=sys.stderr, flush=True)
                minute = Tally()
                next_report += 60
            due = start + i / rate
            if due >= end:
                break
            if due > now:
                await asyncio.sleep(min(due - now, max(0.0, next_report - now)))
                continue
            i += 1
            total.sent += 1
            minute.sent += 1
            if len(tasks) >= args.max_in_flight:
                total.add("any", "shed", 0.0)
                minute.add("any", "shed", 0.0)
                continue
            task = asyncio.create_task(_one(mix, mix.draw(rnd), rnd, args.timeout, total, minute))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        out: dict[str, Any] = {
            "rate": round(rate, 2),
            "peak": round(peak, 2) if peak else None,
            "seconds": round(elapsed, 1),
            "schemes": mix.schemes,
            **total.summary(),
        }
        if cpu0 and pids:
            out.update(cpu.per_op(cpu0, cpu.sample(pids), max(1, total.outcomes["ok"])))
        return out


def _progress(minute: int, t: Tally) -> str:
    s = t.summary()
    return (
        f"soak: minute {minute}: sent {s['sent']} ok {s['ok']} failed {s['failed']} "
        f"lost {s['lost']} wrong {s['wrong']} shed {s['shed']} p50 {s['p50_ms']} ms "
        f"p99 {s['p99_ms']} ms"
    )


def run(args: argparse.Namespace) -> int:
    from tholos.cluster.directory import ClusterError

    try:
        return _run(args)
    except (ClusterError, HttpError, OSError) as exc:  # no cluster, setup refused, no gateway
        print(f"soak: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from tholos.cluster import procs
    from tholos.cluster.layout import ClusterDir, init_cluster
    from tholos.transport.tls import client_ssl_context

    if args.minutes <= 0 or (args.rate is not None and args.rate <= 0):
        print("soak: --minutes and --rate must be positive", file=sys.stderr)
        return 2
    config: dict[str, Any]
    with contextlib.ExitStack() as stack:
        if args.dir is not None:
            cd = ClusterDir(args.dir)
        else:
            root = Path(tempfile.mkdtemp(prefix="tholos-soak-"))
            stack.callback(shutil.rmtree, root, ignore_errors=True)
            cd = ClusterDir(root)
            init_cluster(root, args.nodes, args.threshold)
            stack.callback(procs.down, cd)
            procs.up(cd, wait=60)
        m = cd.load()
        config = {"n": int(m["nodes"]), "t": int(m["threshold"]), "host": os.uname().nodename}
        result = asyncio.run(
            drive(m["gateway"], client_ssl_context(cd.client_tls), args, cpu.cluster_pids(cd))
        )
    result = {**config, "loadavg_1m": round(os.getloadavg()[0], 2), **result}
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"soak over (n={result['n']}, t={result['t']}) at {result['rate']}/s for "
            f"{result['seconds']} s: sent {result['sent']}, ok {result['ok']}, failed "
            f"{result['failed']}, lost {result['lost']}, wrong {result['wrong']}, shed "
            f"{result['shed']}; p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms"
        )
        if result["error_codes"]:
            print(f"error codes: {result['error_codes']}")
    return 1 if result["lost"] or result["wrong"] else 0
