"""`tholos keys disable|enable|label|tag|destroy`: a key's lifecycle (gateway/key_lifecycle.py),
and `tholos keys change|sign-change`: the admins' key change document a governed cluster needs for
disable, enable and destroy (write it, each admin signs it with their own key, then pass it with
`--document FILE`)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tholos.cli import change_files
from tholos.governance.key_changes import (
    ACTIONS,
    MAX_LIFETIME,
    SignedKeyChange,
    new_key_change,
    sign_key_change,
)


def _document(args: argparse.Namespace) -> dict[str, Any] | None:
    path: Path | None = getattr(args, "document", None)
    if path is None:
        return None
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def cmd_lifecycle(args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]) -> Any:
    c = client(args)
    try:
        base = f"/v1/keys/{args.key_id}"
        doc = _document(args)
        if args.action in ("disable", "enable"):
            return c.post(f"{base}/{args.action}", {"change": doc} if doc else None)
        if args.action == "label":
            return c.post(f"{base}/label", {"label": None if args.clear else args.label})
        if args.action == "tag":
            return c.post(f"{base}/tags", {"add": args.add or [], "remove": args.remove or []})
        body: dict[str, Any] = {"confirm": args.confirm}
        if doc:
            body["change"] = doc
        return c.post(f"{base}/destroy", body)
    finally:
        c.close()


def cmd_change(args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]) -> Any:
    """Write a new key change at the cluster's current governance version (signed by --as)."""
    doc = change_files.current_document(args, client)
    change = new_key_change(
        doc.cluster_id,
        doc.version,
        args.key_id,
        args.change,
        int(time.time()),
        args.lifetime,
        args.reason,
    )
    signed = SignedKeyChange(change=change, signatures=())
    return change_files.write_new(args, signed, sign_key_change, _summary)


def cmd_sign_change(args: argparse.Namespace) -> Any:
    """Add the signature of one admin (--as / --key-file) to a key change file, in place."""
    return change_files.sign_in_place(args, SignedKeyChange, sign_key_change, _summary)


def _summary(path: Path, signed: SignedKeyChange) -> dict[str, Any]:
    ch = signed.change
    return {
        "file": str(path),
        "key_id": ch.key_id,
        "action": ch.action,
        "governance_version": ch.governance_version,
        "expires_at": ch.expires_at,
        "signers": sorted(s.signer for s in signed.signatures),
    }


def add_parsers(
    keys_sub: Any,
    common: Callable[[argparse.ArgumentParser], None],
    client: Callable[[argparse.Namespace], Any],
) -> None:
    from tholos.cli.governance_cmds import _signer

    helps = {
        "disable": "stop a key from signing: the gateway and every node refuse it (admin)",
        "enable": "let a disabled key sign again (admin)",
        "label": "set or clear a key's label (--label L or --clear)",
        "tag": "add or remove a key's tags (--add T --remove T, repeatable)",
        "destroy": "every node deletes its share durably; irreversible (admin, --confirm KEY_ID)",
    }
    for name, what in helps.items():
        p = keys_sub.add_parser(name, help=what)
        common(p)
        p.add_argument("key_id")
        if name == "label":
            g = p.add_mutually_exclusive_group(required=True)
            g.add_argument("--label")
            g.add_argument("--clear", action="store_true", help="remove the label")
        elif name == "tag":
            p.add_argument("--add", action="append", metavar="TAG")
            p.add_argument("--remove", action="append", metavar="TAG")
        elif name == "destroy":
            p.add_argument(
                "--confirm", required=True, metavar="KEY_ID", help="the key id again, to confirm"
            )
        if name in ACTIONS:
            p.add_argument(
                "--document",
                type=Path,
                metavar="FILE",
                help="governed cluster: the key change signed by the admin quorum "
                "(`tholos keys change`, `tholos keys sign-change`)",
            )
        p.set_defaults(fn=lambda a: cmd_lifecycle(a, client))
    p = keys_sub.add_parser(
        "change",
        help="write a key change (disable/enable/destroy) for the admin quorum to sign "
        "(governed clusters)",
    )
    common(p)
    p.add_argument("key_id")
    p.add_argument("--action", dest="change", required=True, choices=ACTIONS)
    p.add_argument("--out", type=Path, required=True, metavar="FILE")
    p.add_argument(
        "--lifetime",
        type=int,
        default=86_400,
        help=f"seconds the document stays valid (at most {MAX_LIFETIME})",
    )
    p.add_argument("--reason", default="")
    _signer(p)
    p.set_defaults(fn=lambda a: cmd_change(a, client))
    p = keys_sub.add_parser("sign-change", help="add an admin's signature to a key change file")
    common(p)
    p.add_argument("file", type=Path)
    _signer(p)
    p.set_defaults(fn=cmd_sign_change)
