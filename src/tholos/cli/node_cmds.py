"""`tholos node init | join` (on the node's machine) and `tholos cluster sign-node` (on the CA
holder's): a node run by its own team joins with two carried files, a join request out and a
bundle in (node/enrol.py, cluster/joining.py); `tholos cluster add-node --request F` then gives
it a share of every key. `tholos node --config F` (no action) runs a node, as before."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

ACTIONS = ("init", "join")


def cmd_node_init(args: argparse.Namespace) -> Any:
    from tholos.cli import CliError
    from tholos.cluster.layout import free_port
    from tholos.node.enrol import EnrolError, init_node

    try:
        out = init_node(
            args.node_dir,
            args.node_id,
            args.host,
            args.port or free_port(args.host),
            args.key_file,
            args.listen,
        )
    except EnrolError as exc:
        raise CliError(str(exc), "node_init_refused") from None
    out["next"] = (
        f"give {out['request']} to the cluster's CA holder (`tholos cluster sign-node`), then "
        f"`tholos node join --node-dir {args.node_dir} --bundle BUNDLE`"
    )
    return out


def cmd_node_join(args: argparse.Namespace) -> Any:
    from tholos.cli import CliError
    from tholos.node.enrol import EnrolError, join_node

    try:
        bundle = json.loads(args.bundle.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"--bundle {args.bundle}: cannot read it ({exc})", "usage", 2) from None
    try:
        return join_node(args.node_dir, bundle, args.ca_fingerprint)
    except EnrolError as exc:
        raise CliError(str(exc), "node_join_refused") from None


def cmd_sign_node(
    args: argparse.Namespace, cluster_dir: Callable[[argparse.Namespace], Path]
) -> Any:
    from tholos.cluster.directory import ClusterDir
    from tholos.cluster.joining import read_json, sign_node
    from tholos.transport.join import fingerprint
    from tholos.transport.pki import write_private

    if args.out.exists():
        from tholos.cli import CliError

        raise CliError(f"{args.out} exists: give a new file for the bundle", "usage", 2)
    cd = ClusterDir(cluster_dir(args))
    if args.request is not None:
        bundle = sign_node(cd, read_json(args.request, "join request"))
    elif args.refresh is not None:
        from tholos.cluster.joining import refresh_bundle

        bundle = refresh_bundle(cd, args.refresh)
    else:
        from tholos.cli import CliError

        raise CliError("give --request F (a joining node) or --refresh N (a member)", "usage", 2)
    write_private(args.out, json.dumps(bundle, indent=2).encode())
    body = bundle["body"]
    return {
        "node_id": body["node_id"],
        "bundle": str(args.out),
        "peers": sorted(int(r["node_id"]) for r in body["roster"]),
        # the node's operator checks this out of band: `tholos node join --ca-fingerprint`
        "ca_fingerprint": fingerprint(body["ca"].encode()),
    }


def add_parsers(
    sub: Any,
    cluster_sub: Any,
    common: Callable[..., None],
    cluster_dir: Callable[[argparse.Namespace], Path],
) -> None:
    node = sub.add_parser(
        "node",
        help="run a node (`tholos node --config F`), or set one up on its own machine (init, join)",
    )
    nsub = node.add_subparsers(dest="action", required=True)
    p = nsub.add_parser(
        "init", help="keys (sealed), certificate request and join request for a new node"
    )
    common(p, cluster=False)
    p.add_argument("--node-dir", type=Path, required=True, metavar="D", help="a new directory")
    p.add_argument("--node-id", type=int, required=True, metavar="N")
    p.add_argument("--host", default="127.0.0.1", help="the address the gateway reaches it at")
    p.add_argument("--port", type=int, default=0, help="default: a free port")
    p.add_argument(
        "--listen",
        metavar="ADDR:PORT",
        help="where the node listens, if not HOST:PORT (e.g. 0.0.0.0:7004 in a container)",
    )
    p.add_argument(
        "--key-file",
        type=Path,
        help="seal under this 32-byte key file (outside D) instead of THOLOS_PASSPHRASE",
    )
    p.set_defaults(fn=cmd_node_init)
    p = nsub.add_parser("join", help="check and install the bundle the CA holder issued")
    common(p, cluster=False)
    p.add_argument("--node-dir", type=Path, required=True, metavar="D")
    p.add_argument("--bundle", type=Path, required=True, metavar="F")
    p.add_argument(
        "--ca-fingerprint",
        metavar="HEX",
        help="the cluster CA's SHA-256 fingerprint, as told out of band (refuse any other CA)",
    )
    p.set_defaults(fn=cmd_node_join)
    p = cluster_sub.add_parser(
        "sign-node", help="issue a joining node's certificate and bundle from its join request"
    )
    common(p)
    p.add_argument("--request", type=Path, metavar="F", help="join-request.json")
    p.add_argument(
        "--refresh",
        type=int,
        metavar="N",
        help="instead: a new bundle (current roster) for external member N",
    )
    p.add_argument("--out", type=Path, required=True, metavar="F", help="the bundle to write")
    p.set_defaults(fn=lambda a: cmd_sign_node(a, cluster_dir))
