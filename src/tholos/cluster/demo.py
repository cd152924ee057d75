"""`make run`: initialise (once) and start a local 4-node, threshold-2 cluster and the gateway,
create a key, sign a message, and verify the signature independently (coincurve's BIP340).

    python -m tholos.demo [--dir run/local] [--nodes 4] [--threshold 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from coincurve import PublicKeyXOnly

from tholos.client import Client
from tholos.cluster import procs
from tholos.cluster.layout import ClusterDir, init_cluster


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tholos.cluster.demo")
    ap.add_argument("--dir", type=Path, default=Path(os.environ.get("THOLOS_DIR") or "run/local"))
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--threshold", type=int, default=2)
    args = ap.parse_args(argv)
    cd = ClusterDir(args.dir)
    if not cd.manifest.exists():
        init_cluster(args.dir, args.nodes, args.threshold)
        print(f"initialised a {args.nodes}-node, threshold-{args.threshold} cluster in {args.dir}")
    up = procs.up(cd, wait=60)
    print(
        f"gateway: {up['gateway']}  (nodes up: {up['health']['nodes_up']}/{up['health']['nodes']})"
    )
    c = Client(up["gateway"], cd.client_tls)
    try:
        key = c.post("/v1/keys", {"scheme": "bip340", "label": "demo"})
        print(
            f"key:       {key['key_id']} (bip340, threshold {key['threshold']} of {len(key['participants'])})"
        )
        print(f"public key (x-only): {key['public_key']}")
        message = hashlib.sha256(b"hello from tholos").digest()
        res = c.post(f"/v1/keys/{key['key_id']}/sign", {"message": message.hex()})
        print(f"message:   {message.hex()}")
        print(f"signature: {res['signature']}  (signers {res['signers']})")
        ok = PublicKeyXOnly(bytes.fromhex(key["public_key"])).verify(
            bytes.fromhex(res["signature"]), message
        )
        print(
            f"independent BIP340 verification (coincurve/libsecp256k1): {'VALID' if ok else 'INVALID'}"
        )
        print(
            json.dumps(
                {
                    "key_id": key["key_id"],
                    "public_key": key["public_key"],
                    "message": message.hex(),
                    "signature": res["signature"],
                    "valid": ok,
                }
            )
        )
        print(
            f"web console: {up['gateway']}/console  (it needs a governed cluster: `tholos cluster "
            "init --dir D --governance` writes demo user keys to D/users; the browser presents "
            "the client certificate in D/client)"
        )
        print(
            f"stop the cluster with: make stop  (or: .venv/bin/tholos cluster down --dir {args.dir})"
        )
        return 0 if ok else 1
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main())
