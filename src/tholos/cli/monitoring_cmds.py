"""`tholos monitor balances|deposits W` and
`tholos webhooks add|list|remove|deliveries|key|rotate-key`:
the gateway's deposit monitoring and webhook subscriptions (REST /v1/wallets/{id}/balances,
/v1/wallets/{id}/deposits, /v1/webhooks)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from tholos.client import Client

MakeClient = Callable[[argparse.Namespace], Client]
Common = Callable[..., None]


def _monitor(args: argparse.Namespace, client: MakeClient) -> dict[str, Any]:
    c = client(args)
    try:
        return c.get(f"/v1/wallets/{args.wallet_id}/{args.action}")  # type: ignore[no-any-return]
    finally:
        c.close()


def _webhooks(args: argparse.Namespace, client: MakeClient) -> dict[str, Any]:
    c = client(args)
    try:
        if args.action == "add":
            events = [e.strip() for e in args.events.split(",") if e.strip()]
            return c.post("/v1/webhooks", {"url": args.url, "events": events})  # type: ignore[no-any-return]
        if args.action == "list":
            return c.get("/v1/webhooks")  # type: ignore[no-any-return]
        if args.action == "key":
            return c.get("/v1/webhooks/key")  # type: ignore[no-any-return]
        if args.action == "rotate-key":
            body = {"grace_seconds": args.grace_seconds}
            return c.post("/v1/webhooks/key/rotate", body)  # type: ignore[no-any-return]
        if args.action == "deliveries":
            return c.get(f"/v1/webhooks/{args.webhook_id}/deliveries")  # type: ignore[no-any-return]
        return c.delete(f"/v1/webhooks/{args.webhook_id}")  # type: ignore[no-any-return]
    finally:
        c.close()


def add_parsers(sub: Any, common: Common, client: MakeClient) -> None:
    monitor = sub.add_parser("monitor", help="balances and deposits of a wallet")
    msub = monitor.add_subparsers(dest="action", required=True)
    for action, what in (("balances", "balance per asset"), ("deposits", "deposits seen")):
        p = msub.add_parser(action, help=what)
        common(p)
        p.add_argument("wallet_id")
    monitor.set_defaults(fn=lambda a: _monitor(a, client))
    hooks = sub.add_parser("webhooks", help="webhook subscriptions and their delivery log")
    hsub = hooks.add_subparsers(dest="action", required=True)
    p = hsub.add_parser("add", help="subscribe a URL to events")
    common(p)
    p.add_argument("--url", required=True)
    p.add_argument("--events", default="deposit.seen,deposit.confirmed", help="comma-separated")
    for action in ("list", "key"):
        common(hsub.add_parser(action))
    p = hsub.add_parser("rotate-key", help="sign deliveries with a new key (admin)")
    common(p)
    p.add_argument(
        "--grace-seconds",
        dest="grace_seconds",
        type=int,
        default=7 * 86_400,
        help="how long the old public key stays listed (default: 7 days)",
    )
    for action in ("remove", "deliveries"):
        p = hsub.add_parser(action)
        common(p)
        p.add_argument("webhook_id")
    hooks.set_defaults(fn=lambda a: _webhooks(a, client))
