"""`tholos keys repair`: give a node back its shares (disk lost, node replaced, refresh commit
missed). One key (`KEY_ID --node N`) or every key the node holds (`--all --node N`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import httpx


def cmd_repair(args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]) -> Any:
    from tholos.cli import EXIT_USAGE, CliError

    if bool(args.key_id) == bool(args.all):
        raise CliError("give either KEY_ID or --all", "usage", EXIT_USAGE)
    c = client(args)
    try:
        if args.all:
            # Many keys: the gateway may need a while (t helpers per batch of keys).
            c.http.timeout = httpx.Timeout(600.0)
            return c.post(f"/v1/nodes/{args.node}/repair")
        return c.post(f"/v1/keys/{args.key_id}/repair", {"node": args.node})
    finally:
        c.close()


def add_parsers(
    keys_sub: Any,
    common: Callable[[argparse.ArgumentParser], None],
    client: Callable[[argparse.Namespace], Any],
) -> None:
    p = keys_sub.add_parser(
        "repair", help="restore a node's share of a key (or of every key with --all)"
    )
    common(p)
    p.add_argument("key_id", nargs="?")
    p.add_argument("--node", required=True, type=int, help="the node to repair")
    p.add_argument("--all", action="store_true", help="every key the node holds")
    p.set_defaults(fn=lambda a: cmd_repair(a, client))
