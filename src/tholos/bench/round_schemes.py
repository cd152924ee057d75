"""`tholos bench` lines for threshold ECDSA, threshold BLS and DiSE (see bench/run.py).

- ecdsa presign/sustained: POST /v1/keys/{id}/presign {"count": B} back to back (one batched
  multi-party presigning run among all n nodes per request): the rate at which pools refill.
- ecdsa sign/prefilled: the pool is first filled with `--ecdsa-prefill` presignatures, then that
  many signatures minus a margin are requested (`concurrency` in flight): online signing only.
- bls12381 keygen/single, sign/single: as for the FROST schemes.
- dise encrypt/1KiB, decrypt/1KiB: the client side (commitment, checking t DLEQ proofs, combining,
  AES-GCM; decryption checks the proofs only if the AEAD fails) runs in the bench process, as it
  does in the CLI; each op is one POST .../evaluate.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from tholos.bench import cpu

PAPER = {"bls_keygen_ops": 7.69, "bls_sign_ops": 12.23, "encrypt_ops": 17.7}
ROUND_SCHEMES = ("ecdsa", "bls12381", "dise")

Post = Callable[[str, dict[str, Any]], Awaitable[Any]]


class Measure(Protocol):
    """`bench.run._measure`: by duration, or by request count when `total` is given;
    CPU per operation of the processes in `cpu_pids`."""

    def __call__(
        self,
        concurrency: int,
        duration: float,
        op: Callable[[int], Awaitable[int]],
        total: int | None = None,
        cpu_pids: Mapping[str, int] | None = None,
    ) -> Awaitable[dict[str, Any]]: ...


async def bench_scheme(
    post: Post,
    get: Callable[[str], Awaitable[Any]],
    args: argparse.Namespace,
    n: int,
    t: int,
    scheme: str,
    measure: Measure,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(mode: str, batch: int, conc: int, res: dict[str, Any], note: str = "") -> None:
        r = {"n": n, "t": t, "scheme": scheme, "mode": mode, "batch": batch, "concurrency": conc}
        r.update(res)
        if note:
            r["note"] = note
        rows.append(r)
        print(
            f"| {n} | {t} | {scheme} | {mode} | {batch} | {conc} | {r['ops_per_s']:.1f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} |" + cpu.cells(r),
            file=sys.stderr,
            flush=True,
        )

    conc = args.concurrency
    if scheme == "ecdsa":
        key = (await post("/v1/keys", {"scheme": "ecdsa"}))["key_id"]
        batch = args.presign_batch

        async def presign(i: int) -> int:
            r = await post(f"/v1/keys/{key}/presign", {"count": batch})
            return int(r["added"])

        row("presign/sustained", batch, 1, await measure(1, args.duration, presign))
        prefill = args.ecdsa_prefill
        for start in range(0, prefill, batch):  # in batches: one big run outlasts the RPC timeout
            await post(f"/v1/keys/{key}/presign", {"count": min(batch, prefill - start)})

        async def sign(i: int) -> int:
            await post(f"/v1/keys/{key}/sign", {"message": os.urandom(32).hex()})
            return 1

        total = max(1, prefill - 40)
        row("sign/prefilled", 1, conc, await measure(conc, 0.0, sign, total), f"{total} signatures")
        if getattr(args, "wan", False):  # one in flight, still from presignatures
            await post(f"/v1/keys/{key}/presign", {"count": batch})
            lat = args.latency_concurrency
            row("sign/latency", 1, lat, await measure(lat, 0.0, sign, batch + 20))

            async def ekeygen(i: int) -> int:
                await post("/v1/keys", {"scheme": "ecdsa"})
                return 1

            row("keygen/latency", 1, 1, await measure(1, args.duration, ekeygen))
    elif scheme == "bls12381":

        async def keygen(i: int) -> int:
            await post("/v1/keys", {"scheme": "bls12381"})
            return 1

        row("keygen/single", 1, conc, await measure(conc, args.duration, keygen))
        key = (await post("/v1/keys", {"scheme": "bls12381"}))["key_id"]

        async def bsign(i: int) -> int:
            await post(f"/v1/keys/{key}/sign", {"message": os.urandom(32).hex()})
            return 1

        row("sign/single", 1, conc, await measure(conc, args.duration, bsign))
        if getattr(args, "wan", False):
            row("keygen/latency", 1, 1, await measure(1, args.duration, keygen))
            row("sign/latency", 1, 1, await measure(1, args.duration, bsign))
    elif scheme == "dise":
        from tholos.crypto import dise
        from tholos.crypto.keys import PublicKeyPackage

        key = (await post("/v1/keys", {"scheme": "dise"}))["key_id"]
        public = PublicKeyPackage.from_dict((await get(f"/v1/keys/{key}"))["public_key_package"])
        data = os.urandom(1024)

        async def evaluate(req: Any) -> list[Any]:
            r = await post(
                f"/v1/keys/{key}/evaluate",
                {"alpha": req.alpha.hex(), "encryptor": req.encryptor, "purpose": req.purpose},
            )
            return [dise.PartialEval.from_dict(p) for p in r["partials"]]

        cts: list[bytes] = []

        async def encrypt(i: int) -> int:
            ctx, req = dise.encrypt_begin(public, "bench", data)
            ct = dise.encrypt_finish(public, ctx, await evaluate(req))
            if len(cts) < 64:
                cts.append(ct)
            return 1

        row("encrypt/1KiB", 1, conc, await measure(conc, args.duration, encrypt))

        async def decrypt(i: int) -> int:
            ct = cts[i % len(cts)]
            req = dise.decrypt_begin(public, ct)
            assert dise.decrypt_finish(public, ct, await evaluate(req)) == data
            return 1

        row("decrypt/1KiB", 1, conc, await measure(conc, args.duration, decrypt))
        if getattr(args, "wan", False):
            row("encrypt/latency", 1, 1, await measure(1, args.duration, encrypt))
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ecdsa-prefill", type=int, default=1000, help="presignatures before sign/prefilled"
    )
    p.add_argument("--presign-batch", type=int, default=100, help="presignatures per request")


def reference_line() -> str:
    return (
        f"Published, 4 servers: BLS keygen {PAPER['bls_keygen_ops']} op/s, sign "
        f"{PAPER['bls_sign_ops']} op/s; encryption {PAPER['encrypt_ops']} op/s."
    )
