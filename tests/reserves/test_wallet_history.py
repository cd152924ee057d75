"""The chain-neutral parts of `tholos report reconcile`: asset names as intents spell them, bad
assets refused by name, ISO-8601 times, and the height a time maps to (a property against a
direct scan)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tholos.reserves.wallet_history import asset_name, height_at, parse_time

TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"  # anvil's first contract, EIP-55


def test_assets_are_named_as_intents_name_them() -> None:
    assert asset_name("bitcoin", None) == "BTC" and asset_name("solana", "sol") == "SOL"
    assert asset_name("ethereum", TOKEN.lower()) == f"erc20:{TOKEN}"
    assert asset_name("ethereum", f"erc20:{TOKEN.upper().replace('0X', '0x')}") == f"erc20:{TOKEN}"
    mint = "So11111111111111111111111111111111111111112"
    assert asset_name("solana", mint) == asset_name("solana", f"spl:{mint}") == f"spl:{mint}"


@pytest.mark.parametrize(
    ("chain", "given", "words"),
    [
        ("bitcoin", "ETH", "BTC only"),
        ("ethereum", "USDC", "not an ERC-20 contract address"),
        ("ethereum", TOKEN[:-1] + "A", "not an ERC-20 contract address"),  # bad checksum
        ("solana", "spl:not-a-mint", "not an SPL mint address"),
        ("cosmos", None, "no reconciliation for cosmos"),
    ],
)
def test_bad_assets_are_refused_by_name(chain: str, given: str | None, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        asset_name(chain, given)


def test_times_are_iso_8601_utc_unless_zoned() -> None:
    assert parse_time("2026-12-03T16:00:00Z") == parse_time("2026-12-03T16:00:00") == 1796313600
    assert parse_time("2026-12-03T17:00:00+01:00") == 1796313600
    with pytest.raises(ValueError, match="not an ISO-8601 time: 'yesterday'"):
        parse_time("yesterday")


@given(st.lists(st.integers(0, 50), min_size=1, max_size=40), st.integers(-5, 2_000))
def test_a_time_maps_to_the_last_block_at_or_before_it(steps: list[int], when: int) -> None:
    times = [sum(steps[: i + 1]) for i in range(len(steps))]  # non-decreasing, genesis first
    expected = max((h for h, t in enumerate(times) if t <= when), default=0)
    assert height_at(lambda h: times[h], len(times) - 1, when) == expected
