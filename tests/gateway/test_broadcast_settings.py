"""The gateway's `broadcast` and `monitor` config sections: read as given, refused naming what is
wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from tholos.connectors.bitcoin_core import BitcoinCore
from tholos.connectors.solana_rpc import SolanaRpc
from tholos.gateway.broadcast_service import BroadcastSettings
from tholos.gateway.monitor_service import MonitorSettings


def test_settings_are_read_with_their_defaults() -> None:
    s = BroadcastSettings.from_config({"ethereum_rpc": ["http://127.0.0.1:8545"]})
    assert s == BroadcastSettings(("http://127.0.0.1:8545",), 1, 2.0)
    assert BroadcastSettings.from_config({"confirmations": 3, "interval": 0.5}).confirmations == 3


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ({"ethereum_rpc": "http://127.0.0.1:8545"}, "a list of JSON-RPC URLs"),
        ({"ethereum_rpc": [1]}, "a list of JSON-RPC URLs"),
        ({"confirmations": 0}, "confirmations at least 1"),
        ({"interval": 0}, "interval above 0"),
        ({"rpc": []}, "unknown setting(s) ['rpc']"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(section: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError) as bad:
        BroadcastSettings.from_config(section)
    assert words in str(bad.value)


def test_bitcoin_and_solana_nodes_are_read() -> None:
    s = BroadcastSettings.from_config(
        {
            "bitcoin_rpc": ["http://127.0.0.1:18443/"],
            "bitcoin_cookie": "/var/lib/bitcoind/regtest/.cookie",
            "solana_rpc": ["http://127.0.0.1:8899"],
        }
    )
    assert s.any and not s.ethereum_rpc
    assert s.bitcoin_rpc == ("http://127.0.0.1:18443/",) and s.solana_rpc == (
        "http://127.0.0.1:8899",
    )
    assert s.bitcoin_cookie == Path("/var/lib/bitcoind/regtest/.cookie")
    assert not BroadcastSettings.from_config({}).any


@pytest.mark.parametrize(
    ("section", "words"),
    [
        (
            {"bitcoin_rpc": "http://127.0.0.1:8332"},
            "broadcast.bitcoin_rpc: a list of JSON-RPC URLs",
        ),
        ({"solana_rpc": [None]}, "broadcast.solana_rpc: a list of JSON-RPC URLs"),
        ({"bitcoin_cookie": 5}, "broadcast.bitcoin_cookie: the path"),
    ],
)
def test_bad_node_settings_are_refused(section: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError) as bad:
        BroadcastSettings.from_config(section)
    assert words in str(bad.value)


def test_monitor_section_takes_any_chain_and_refuses_none() -> None:
    s = MonitorSettings.from_config(
        {"bitcoin_rpc": "http://127.0.0.1:18443/", "bitcoin_scan_from": 800_000}
    )
    (btc,) = s.connectors().values()
    assert isinstance(btc, BitcoinCore) and btc.scan_from == 800_000
    (sol,) = (
        MonitorSettings.from_config({"solana_rpc": "http://127.0.0.1:8899"}).connectors().values()
    )
    assert isinstance(sol, SolanaRpc)
    with pytest.raises(ValueError, match="give ethereum_rpc, bitcoin_rpc or solana_rpc"):
        MonitorSettings.from_config({"confirmations": 2})
    with pytest.raises(ValueError, match=r"monitor\.solana_rpc: the JSON-RPC URL of a Solana node"):
        MonitorSettings.from_config({"solana_rpc": ""})
    with pytest.raises(ValueError, match="unknown setting"):
        MonitorSettings.from_config({"bitcoin_rpc": "http://x/", "bitcoin": 1})
