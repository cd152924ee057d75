"""`tholos backup officers | create | verify | restore`: backups under shared control."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cmd_backup(args: argparse.Namespace, cluster_dir: Callable[[argparse.Namespace], Path]) -> Any:
    from tholos.backup.errors import BackupError
    from tholos.cli import CliError

    try:
        if args.action == "verify":
            from tholos.backup.verify import verify_set

            return {"ok": True, **verify_set(args.backup).summary()}
        if args.action == "drill":
            from tholos.backup.drill import drill

            started = time.monotonic()
            source = args.dir or (
                Path(os.environ["THOLOS_DIR"]) if os.environ.get("THOLOS_DIR") else None
            )
            res = drill(args.backup, args.officer_share or [], source)
            return {**res, "seconds": round(time.monotonic() - started, 3)}
        if args.action == "restore":
            from tholos.backup.restore import restore

            started = time.monotonic()
            res = restore(
                args.backup,
                args.officer_share or [],
                args.to or cluster_dir(args),
                set(args.node) if args.node else None,
            )
            return {**res, "seconds": round(time.monotonic() - started, 3)}
        root = cluster_dir(args)
        if args.action == "create":
            from tholos.backup.create import create_backup

            return create_backup(root, args.to)
        from tholos.backup.manifest import cluster_id
        from tholos.backup.recovery import RECIPIENT_FILE, write_recovery
        from tholos.cluster.layout import ClusterDir

        cd = ClusterDir(root)
        m = cd.load()
        ids = [int(r["node_id"]) for r in m["roster"]]
        if not args.force and any((cd.node_dir(i) / RECIPIENT_FILE).exists() for i in ids):
            raise BackupError("the nodes already have recovery keys (use --force to replace them)")
        return write_recovery(root, cluster_id(m), ids, args.officers, args.threshold)
    except BackupError as exc:
        raise CliError(str(exc), "backup_refused") from None


def add_parsers(
    sub: Any,
    common: Callable[..., None],
    cluster_dir: Callable[[argparse.Namespace], Path],
) -> None:
    bp = sub.add_parser("backup", help="encrypted backups under the recovery officers' control")
    bsub = bp.add_subparsers(dest="action", required=True)
    p = bsub.add_parser("officers", help="give every node a recovery key split among officers")
    common(p)
    p.add_argument("--officers", type=int, required=True, metavar="M")
    p.add_argument("--threshold", type=int, required=True, metavar="K")
    p.add_argument("--force", action="store_true", help="replace existing recovery keys")
    p = bsub.add_parser(
        "create", help="back up every node, running or stopped (consistent snapshots)"
    )
    common(p)
    p.add_argument("--to", type=Path, required=True, help="new directory for the backup set")
    p = bsub.add_parser("verify", help="check a backup set without decrypting it")
    common(p)
    p.add_argument("backup", type=Path)
    p = bsub.add_parser(
        "drill", help="restore a set on throw-away nodes, check every node opens, delete them"
    )
    common(p)
    p.add_argument("backup", type=Path)
    p.add_argument("--officer-share", type=Path, action="append", metavar="F")
    p = bsub.add_parser("restore", help="rebuild nodes from a backup set and officer shares")
    common(p)
    p.add_argument("backup", type=Path)
    p.add_argument("--officer-share", type=Path, action="append", metavar="F")
    p.add_argument("--to", type=Path, default=None, help="cluster directory (default --dir)")
    p.add_argument("--node", type=int, action="append", help="restore only this node")
    bp.set_defaults(fn=lambda a: cmd_backup(a, cluster_dir))
