"""The `tholos` command line. Every command accepts `--json`: one JSON object on stdout, and on
failure a non-zero exit status with `{"error": {...}}`.

The cluster is found from `--dir D` (or $THOLOS_DIR): its cluster.json names the gateway, and the CA
and client credentials live beside it. A remote cluster: `--gateway URL --ca F --cert F --key F`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tholos.client import ApiError, Client
from tholos.transport.tls import TlsFiles

EXIT_USAGE = 2


class CliError(Exception):
    def __init__(self, message: str, code: str = "error", exit_code: int = 1, **extra: Any) -> None:
        self.code = code
        self.exit_code = exit_code
        self.extra = extra
        super().__init__(message)


def _common(p: argparse.ArgumentParser, cluster: bool = True) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")
    if cluster:
        p.add_argument(
            "--dir", type=Path, default=None, help="cluster directory (default $THOLOS_DIR)"
        )
        p.add_argument("--gateway", default=None, help="gateway URL of a remote cluster")
        p.add_argument("--ca", type=Path, help="CA certificate (with --gateway)")
        p.add_argument("--cert", type=Path, help="client certificate (with --gateway)")
        p.add_argument("--key", type=Path, help="client private key (with --gateway)")


def _cluster_dir(args: argparse.Namespace) -> Path:
    d = args.dir or (Path(os.environ["THOLOS_DIR"]) if os.environ.get("THOLOS_DIR") else None)
    if d is None:
        raise CliError("no cluster: give --dir D or set THOLOS_DIR", "usage", EXIT_USAGE)
    return Path(d)


def _client(args: argparse.Namespace) -> Client:
    if args.gateway:
        tls = None
        if args.ca or args.cert or args.key:
            if not (args.ca and args.cert and args.key):
                raise CliError("--ca, --cert and --key go together", "usage", EXIT_USAGE)
            tls = TlsFiles(args.ca, args.cert, args.key)
        return Client(args.gateway, tls)
    from tholos.cluster.layout import ClusterDir

    cd = ClusterDir(_cluster_dir(args))
    return Client(cd.load()["gateway"], cd.client_tls)


def _emit(args: argparse.Namespace, obj: dict[str, Any]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(obj, separators=(",", ":")))
    else:
        for k, v in obj.items():
            print(f"{k}: {json.dumps(v) if isinstance(v, dict | list) else v}")


# -- commands ------------------------------------------------------------------------------------
def cmd_cluster(args: argparse.Namespace) -> dict[str, Any]:
    from tholos.cluster import procs
    from tholos.cluster.layout import ClusterDir, init_cluster

    cd = ClusterDir(_cluster_dir(args))
    if args.action == "init":
        from tholos.cluster.governance_init import parse_admins

        admins = parse_admins(args.admins) if args.admins else None
        m = init_cluster(
            cd.root,
            args.nodes,
            args.threshold,
            force=args.force,
            governance=args.governance,
            admins=admins,
            admin_quorum=args.admin_quorum,
            recovery_officers=args.recovery_officers,
            recovery_threshold=args.recovery_threshold,
        )
        res: dict[str, Any] = {
            "dir": str(cd.root),
            "nodes": m["nodes"],
            "threshold": m["threshold"],
            "gateway": m["gateway"],
            "governance": m["governance"]["mode"],
        }
        if "genesis_backup" in m:  # the ceremony's first backup, restore-drilled
            res["genesis_backup"] = m["genesis_backup"]
        if admins:
            gov = m["governance"]
            res.update(
                cluster_id=gov["cluster_id"],
                genesis_proposal=str(cd.root / gov["proposal"]),
                genesis_digest=gov["genesis_digest"],
                admin_quorum=gov["admin_quorum"],
            )
        return res
    if args.action == "up":
        gov = cd.load().get("governance", {})
        if gov.get("mode") == "pending-genesis":
            raise CliError(
                "the genesis is not finalized: each admin runs `tholos genesis sign --key-file "
                "F`, then `tholos genesis finalize`",
                "genesis_pending",
            )
        r = procs.up(cd, wait=args.wait)
        return {
            "gateway": r["gateway"],
            "started": r["started"],
            "nodes_up": r["health"]["nodes_up"],
        }
    if args.action == "down":
        return procs.down(cd)
    if args.action == "gateway-add":
        from tholos.cluster.gateways import add_gateway

        return add_gateway(cd, args.name, args.store, args.port)
    st = procs.status(cd)
    out: dict[str, Any] = {"dir": str(cd.root), "processes": st, "gateway": cd.load()["gateway"]}
    if st.get("gateway", {}).get("running"):
        c = Client(cd.load()["gateway"], cd.client_tls, timeout=5.0)
        try:
            out["cluster"] = c.get("/v1/cluster")
        except Exception as exc:
            out["cluster"] = {"error": str(exc)}
        finally:
            c.close()
    return out


LIST_FILTERS = ("scheme", "label", "public_key", "created_after", "created_before")


def _list_keys(c: Any, args: argparse.Namespace) -> dict[str, Any]:
    """`keys list`: every matching key, page by page (or one page with --limit/--offset)."""
    params: dict[str, Any] = {f: getattr(args, f) for f in LIST_FILTERS if getattr(args, f)}
    if args.limit is not None or args.offset:
        params.update(limit=args.limit or 100, offset=args.offset)
        return c.get("/v1/keys", params)  # type: ignore[no-any-return]
    keys: list[Any] = []
    offset: int | None = 0
    total = 0
    while offset is not None:
        page = c.get("/v1/keys", {**params, "limit": 1000, "offset": offset})
        keys += page["keys"]
        total, offset = page["total"], page["next_offset"]
    return {"keys": keys, "total": total}


def cmd_keys(args: argparse.Namespace) -> dict[str, Any]:
    c = _client(args)
    try:
        if args.action == "create":
            r = c.post("/v1/keys", {"scheme": args.scheme, "label": args.label})
            return {
                "key_id": r["key_id"],
                "scheme": r["scheme"],
                "public_key": r["public_key"],
                "label": r["label"],
            }
        if args.action == "list":
            return _list_keys(c, args)
        if args.action == "show":
            return c.get(f"/v1/keys/{args.key_id}")  # type: ignore[no-any-return]
        if args.action == "derive":
            r = c.get(f"/v1/keys/{args.key_id}/derive", {"path": args.path})
            return {
                "public_key": r["public_key"],
                "xpub": r["xpub"],
                "path": r["path"],
                "key_id": args.key_id,
            }
        if args.action == "refresh":
            r = c.post(f"/v1/keys/{args.key_id}/refresh")
            return {
                "key_id": r["key_id"],
                "public_key": r["public_key"],
                "refreshed": True,
                # nodes that did not commit (crashed): the gateway re-sends the commit when
                # they are up again; `tholos keys repair KEY --node N` if one lost its share
                "uncommitted": r.get("uncommitted", []),
            }
        if args.action == "import":
            return _import(args, c)
    finally:
        c.close()
    raise CliError(f"unknown action {args.action}", "usage", EXIT_USAGE)


def split_secret(scheme: str, text: str, threshold: int, participants: list[int]) -> Any:
    """The key ceremony's split for `scheme`: BLS and DiSE keys are raw scalars of their group,
    the others what `import_key` reads (hex key, Ed25519 seed, xprv)."""
    from tholos.crypto.groups import ED25519
    from tholos.crypto.groups.bls12381 import BLS12_381_G1
    from tholos.crypto.key_import import import_key, import_scalar
    from tholos.schemes import SCHEMES

    if scheme == "bls12381":
        return import_scalar(BLS12_381_G1, text, threshold, participants)
    if scheme == "dise":
        return import_scalar(ED25519, text, threshold, participants, "little")
    return import_key(SCHEMES[scheme].group, text, threshold, participants)


def _import(args: argparse.Namespace, c: Client) -> dict[str, Any]:
    """Split the key here (this short-lived process is the key ceremony) and seal each share to
    its node's identity key; the gateway relays sealed shares only."""
    from tholos.crypto.errors import CryptoError
    from tholos.transport.e2e import PeerIdentity, seal_to

    text = args.secret_file.read_text().strip()
    if args.gateway and not args.roster:
        raise CliError(
            "importing into a remote cluster needs --roster (the nodes' identity keys)", "usage", 2
        )
    if args.roster:
        manifest = json.loads(args.roster.read_text())
    else:
        from tholos.cluster.layout import ClusterDir

        manifest = ClusterDir(_cluster_dir(args)).load()
    roster = {int(r["node_id"]): PeerIdentity.from_dict(r) for r in manifest["roster"]}
    try:
        imported = split_secret(args.scheme, text, int(manifest["threshold"]), sorted(roster))
    except CryptoError as exc:
        raise CliError(f"cannot import the key: {exc}", "bad_secret") from None
    # The key id is chosen by the gateway; the boxes are bound to the recipient node id.
    public = imported.public.to_dict()
    sealed = {
        str(i): seal_to(roster[i], f"import|{i}".encode(), json.dumps(s.export_secret()).encode())
        for i, s in imported.shares.items()
    }
    meta = {"xpub": imported.xpub.to_xpub()} if imported.xpub is not None else {}
    r = c.post(
        "/v1/keys/import",
        {
            "scheme": args.scheme,
            "label": args.label,
            "public": public,
            "meta": meta,
            "sealed": sealed,
        },
    )
    return {
        "key_id": r["key_id"],
        "scheme": r["scheme"],
        "public_key": r["public_key"],
        "imported": True,
    }


def cmd_sign(args: argparse.Namespace) -> dict[str, Any]:
    c = _client(args)
    try:
        body: dict[str, Any] = {
            "message": args.message,
            "path": args.path or "",
            "taproot_tweak": bool(args.taproot_tweak),
        }
        if args.merkle_root:
            body["merkle_root"] = args.merkle_root
        r = c.post(f"/v1/keys/{args.key_id}/sign", body)
        if "recovery_id" in r:  # ecdsa
            from tholos.cli.crypto_cmds import ecdsa_output

            r.update(ecdsa_output(r, bool(getattr(args, "ethereum", False))))
        elif getattr(args, "ethereum", False):
            raise CliError("--ethereum is for ecdsa keys", "usage", EXIT_USAGE)
        out = {
            **({"recovery_id": r["recovery_id"]} if "recovery_id" in r else {}),
            "signature": r["signature"],
            "public_key": r["public_key"],
            "key_id": r["key_id"],
            "signers": r["signers"],
            "excluded": r.get("excluded", {}),  # node -> why it was left out, as REST says
        }
        return out
    finally:
        c.close()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tholos", description="tholos distributed HSM")
    sub = ap.add_subparsers(dest="command", required=True)

    sub.add_parser("gateway", help="run the gateway (see tholos gateway --help)", add_help=False)

    cl = sub.add_parser(
        "cluster",
        help="local cluster: init, up, down, status, reshare, add-node, remove-node, replace-node",
    )
    clsub = cl.add_subparsers(dest="action", required=True)
    p = clsub.add_parser("init")
    _common(p)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--threshold", type=int, default=2)
    p.add_argument("--force", action="store_true")
    gov = p.add_mutually_exclusive_group()
    gov.add_argument(
        "--governance",
        action="store_true",
        help="write a genesis (demo user keys in D/users, or see --admins): nodes sign only "
        "approved requests",
    )
    gov.add_argument(
        "--no-governance",
        dest="governance",
        action="store_false",
        help="development mode (default): nodes sign what the gateway sends, and log it loudly",
    )
    p.add_argument(
        "--admins",
        action="append",
        metavar="NAME=PUBHEX|NAME=@FILE,...",
        help="with --governance: the genesis admins, each with their own Ed25519 public key (hex, "
        "or @FILE from `tholos users keygen`); writes a genesis proposal for them to sign",
    )
    p.add_argument("--admin-quorum", type=int, help="admin signatures needed (default: majority)")
    p.add_argument(
        "--recovery-officers", type=int, default=0, metavar="M", help="officers per node"
    )
    p.add_argument("--recovery-threshold", type=int, default=0, metavar="K", help="of M to restore")
    p = clsub.add_parser("up")
    _common(p)
    p.add_argument("--wait", type=float, default=60.0)
    for a in ("down", "status"):
        _common(clsub.add_parser(a))
    p = clsub.add_parser(
        "gateway-add", help="another gateway of this cluster; every gateway shares --store"
    )
    _common(p)
    p.add_argument("--name", required=True, help="the new gateway's name (D/gateway-NAME)")
    p.add_argument("--store", required=True, help="postgresql://… (no password: PGPASSWORD)")
    p.add_argument("--port", type=int, default=0, help="its REST port (default: a free one)")
    cl.set_defaults(fn=cmd_cluster)

    keys = sub.add_parser(
        "keys",
        help="create, import, list, show, derive, refresh, repair, disable, label, destroy keys",
    )
    ksub = keys.add_subparsers(dest="action", required=True)
    p = ksub.add_parser("create", help="a new threshold key by distributed key generation")
    _common(p)
    p.add_argument(
        "--scheme",
        required=True,
        choices=["bip340", "ed25519", "secp256k1", "ecdsa", "bls12381", "dise"],
    )
    p.add_argument("--label")
    p = ksub.add_parser(
        "import", help="split an existing secret key (hex or xprv) into shares, one per node"
    )
    _common(p)
    p.add_argument(
        "--scheme",
        required=True,
        choices=["bip340", "ed25519", "secp256k1", "ecdsa", "bls12381", "dise"],
    )
    p.add_argument(
        "--secret-file",
        required=True,
        type=Path,
        help="hex: secp256k1/ecdsa/bip340 32-byte big-endian key or xprv; ed25519 RFC 8032 seed; "
        "bls12381 32-byte big-endian secret key; dise 32-byte little-endian scalar",
    )
    p.add_argument("--label")
    p.add_argument(
        "--roster", type=Path, help="cluster.json of a remote cluster (node identity keys)"
    )
    p = ksub.add_parser("list", help="all keys (every page), or one page with --limit/--offset")
    _common(p)
    p.add_argument(
        "--scheme", choices=["bip340", "ed25519", "secp256k1", "ecdsa", "bls12381", "dise"]
    )
    p.add_argument("--label", help="exactly this label")
    p.add_argument("--public-key", dest="public_key", help="exactly this public key (hex)")
    p.add_argument("--created-after", dest="created_after", type=float, help="unix time")
    p.add_argument("--created-before", dest="created_before", type=float, help="unix time")
    p.add_argument("--limit", type=int, help="one page of at most this many keys (1-1000)")
    p.add_argument("--offset", type=int, default=0, help="with --limit: keys to skip")
    for a, what in (
        ("show", "one key: public key, scheme, label, tags, state, refresh epoch"),
        ("refresh", "proactive refresh: new shares on every node, the public key unchanged"),
    ):
        p = ksub.add_parser(a, help=what)
        _common(p)
        p.add_argument("key_id")
    p = ksub.add_parser("derive", help="public key (and xpub) of a BIP32 non-hardened path")
    _common(p)
    p.add_argument("key_id")
    p.add_argument("--path", required=True)
    keys.set_defaults(fn=cmd_keys)

    p = sub.add_parser("sign", help="sign a message with a key")
    _common(p)
    p.add_argument("key_id")
    p.add_argument("--message", required=True, help="hex")
    p.add_argument("--path")
    p.add_argument("--taproot-tweak", action="store_true")
    p.add_argument("--merkle-root", help="hex, 32 bytes (with --taproot-tweak)")
    p.add_argument(
        "--ethereum", action="store_true", help="ecdsa keys: 65-byte r||s||v, v = 27 + recovery id"
    )
    p.set_defaults(fn=cmd_sign)

    from tholos.cli.crypto_cmds import add_parsers as add_crypto_parsers

    add_crypto_parsers(sub, ksub, _common, _client)

    from tholos.cli.wallet_cmds import add_parsers as add_wallet_parsers

    tx_sub = add_wallet_parsers(sub, _common, _client)

    from tholos.cli.outbox_cmds import add_parsers as add_outbox_parsers

    add_outbox_parsers(sub, tx_sub, _common, _client, _cluster_dir)

    from tholos.cli.reserves_cmds import add_parsers as add_reserves_parsers
    from tholos.cli.reserves_cmds import add_report_parsers

    add_reserves_parsers(sub, _common, _client)
    add_report_parsers(sub, _common, _client)

    from tholos.cli.monitoring_cmds import add_parsers as add_monitoring_parsers

    add_monitoring_parsers(sub, _common, _client)

    from tholos.cli.repair_cmds import add_parsers as add_repair_parsers

    add_repair_parsers(ksub, _common, _client)

    from tholos.cli.committee_cmds import add_parsers as add_committee_parsers

    add_committee_parsers(clsub, ksub, _common, _client)

    from tholos.cli.node_cmds import add_parsers as add_node_parsers

    add_node_parsers(sub, clsub, _common, _cluster_dir)

    from tholos.cli.vault_cmds import add_parsers as add_vault_parsers

    add_vault_parsers(sub, _common, _client)

    from tholos.cli.lifecycle_cmds import add_parsers as add_lifecycle_parsers

    add_lifecycle_parsers(ksub, _common, _client)

    from tholos.cli.governance_cmds import add_commands as add_governance_commands

    add_governance_commands(sub, _common)

    from tholos.cli.backup_cmds import add_parsers as add_backup_parsers

    add_backup_parsers(sub, _common, _cluster_dir)
    from tholos.cli.release_cmds import add_commands as add_release_commands

    add_release_commands(sub, _common)
    from tholos.cli.attest_cmds import add_commands as add_attest_commands

    add_attest_commands(sub, _common)

    p = sub.add_parser("bench", help="benchmark local clusters")
    _common(p, cluster=False)
    from tholos.bench.run import add_arguments

    add_arguments(p)
    p.set_defaults(fn=None)

    p = sub.add_parser(
        "soak", help="mixed load at a set rate for minutes; failed and lost requests"
    )
    _common(p, cluster=False)
    from tholos.bench.soak import add_arguments as add_soak_arguments

    add_soak_arguments(p)
    p.set_defaults(fn=None)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from tholos.cli.node_cmds import ACTIONS as NODE_ACTIONS

    if argv and argv[0] == "node" and not (len(argv) > 1 and argv[1] in NODE_ACTIONS):
        from tholos.node.server import main as node_main

        return node_main(argv[1:])
    if argv and argv[0] == "gateway":
        from tholos.gateway.server import main as gateway_main

        return gateway_main(argv[1:])
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.command == "bench":
        from tholos.bench.run import run

        return run(args)
    if args.command == "soak":
        from tholos.bench.soak import run as soak

        return soak(args)
    try:
        out = args.fn(args)
    except (CliError, ApiError, OSError, ValueError) as exc:
        err: dict[str, Any]
        code = 1
        if isinstance(exc, ApiError):
            body = exc.body.get("error", {})
            err = {
                "status": exc.status,
                **(body if isinstance(body, dict) else {"message": str(body)}),
            }
            err.setdefault("code", "api_error")
            err.setdefault("message", str(exc))
        elif isinstance(exc, CliError):
            err = {"code": exc.code, "message": str(exc), **exc.extra}
            code = exc.exit_code
        else:
            import httpx

            err = {"code": "invalid_input", "message": str(exc)}
            if isinstance(exc, OSError):
                err["code"] = "os_error"
            if isinstance(exc, httpx.TransportError):
                err["code"] = "unreachable"
        if getattr(args, "json", False):
            print(json.dumps({"error": err}, separators=(",", ":")))
        else:
            print(f"tholos: {err['message']}", file=sys.stderr)
        return code
    except Exception as exc:
        import httpx

        if not isinstance(exc, httpx.HTTPError):
            from tholos.cluster.layout import ClusterError

            if not isinstance(exc, ClusterError):
                raise
        err = {
            "code": "unreachable" if isinstance(exc, httpx.HTTPError) else "cluster_error",
            "message": f"{exc}",
        }
        if getattr(args, "json", False):
            print(json.dumps({"error": err}, separators=(",", ":")))
        else:
            print(f"tholos: {err['message']}", file=sys.stderr)
        return 1
    _emit(args, out)
    return 0
