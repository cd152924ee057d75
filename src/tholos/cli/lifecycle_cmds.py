"""`tholos keys disable|enable|label|tag|destroy`: a key's lifecycle (gateway/key_lifecycle.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def cmd_lifecycle(args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]) -> Any:
    c = client(args)
    try:
        base = f"/v1/keys/{args.key_id}"
        if args.action in ("disable", "enable"):
            return c.post(f"{base}/{args.action}")
        if args.action == "label":
            return c.post(f"{base}/label", {"label": None if args.clear else args.label})
        if args.action == "tag":
            return c.post(f"{base}/tags", {"add": args.add or [], "remove": args.remove or []})
        return c.post(f"{base}/destroy", {"confirm": args.confirm})
    finally:
        c.close()


def add_parsers(
    keys_sub: Any,
    common: Callable[[argparse.ArgumentParser], None],
    client: Callable[[argparse.Namespace], Any],
) -> None:
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
        p.set_defaults(fn=lambda a: cmd_lifecycle(a, client))
