"""`tholos vault token`: TTL parsing and its refusals (the commands themselves run against a real
cluster in tests/cluster/test_vault_hvac.py)."""

from __future__ import annotations

import pytest

from tholos.cli import build_parser
from tholos.cli.vault_cmds import parse_ttl


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000)]
)
def test_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0h", "-5", "1w", "1.5h", "h"])
def test_bad_ttl_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="--ttl"):
        parse_ttl(text)


def test_parser_has_the_commands() -> None:
    ap = build_parser()
    args = ap.parse_args(["vault", "token", "create", "--identity", "signer", "--json"])
    assert (args.action, args.identity, args.ttl) == ("create", "signer", "24h")
    args = ap.parse_args(["vault", "token", "revoke", "abc"])
    assert args.accessor == "abc"
