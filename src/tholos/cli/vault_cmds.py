"""`tholos vault token create|list|revoke`: Vault tokens (`X-Vault-Token`) for the gateway's
Vault-transit-compatible API, issued to a named API identity (admin only). The token is printed
once; the gateway keeps only its hash."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

TTL = re.compile(r"^([0-9]+)([smhd]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """`90`, `90s`, `15m`, `12h`, `30d` -> seconds."""
    m = TTL.match(text.strip())
    if m is None or int(m.group(1)) == 0:
        raise ValueError(f"--ttl {text!r}: a positive number of seconds, or with s, m, h or d")
    return int(m.group(1)) * UNITS[m.group(2)]


def cmd_token(args: argparse.Namespace, client: Callable[[argparse.Namespace], Any]) -> Any:
    c = client(args)
    try:
        if args.action == "create":
            body: dict[str, Any] = {"ttl": parse_ttl(args.ttl)}
            if args.identity:
                body["identity"] = args.identity
            return c.post("/v1/vault/tokens", body)
        if args.action == "list":
            return c.get("/v1/vault/tokens")
        return c.delete(f"/v1/vault/tokens/{args.accessor}")
    finally:
        c.close()


def add_parsers(
    sub: Any,
    common: Callable[[argparse.ArgumentParser], None],
    client: Callable[[argparse.Namespace], Any],
) -> None:
    vault = sub.add_parser("vault", help="tokens for the Vault-transit-compatible API")
    vsub = vault.add_subparsers(dest="vault_command", required=True)
    token = vsub.add_parser("token", help="create, list or revoke Vault tokens")
    tsub = token.add_subparsers(dest="action", required=True)
    p = tsub.add_parser("create", help="a new token (printed once) for an API identity")
    common(p)
    p.add_argument("--identity", help="API client the token acts as (default: the caller's)")
    p.add_argument("--ttl", default="24h", help="lifetime: seconds, or 15m, 12h, 30d (24h)")
    p = tsub.add_parser("list", help="every token's accessor, identity and expiry")
    common(p)
    p = tsub.add_parser("revoke", help="revoke a token by its accessor")
    common(p)
    p.add_argument("accessor")
    for name in ("create", "list", "revoke"):
        tsub.choices[name].set_defaults(fn=lambda a: cmd_token(a, client))
