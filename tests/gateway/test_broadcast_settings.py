"""The gateway's `broadcast` config section: read as given, refused naming what is wrong."""

from __future__ import annotations

import pytest

from tholos.gateway.broadcast_service import BroadcastSettings


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
