"""The outbox table itself: one row per transaction hash however often it is enqueued, leases
that keep a second broadcaster off a row, and updates that refuse what is not a column or a
state (nothing changes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tholos.gateway.outbox import signed_transaction
from tholos.gateway.store import GatewayStore

SIGNED = {"raw": "0x02abcd", "encoding": "hex", "txid": "0x" + "11" * 32, "from": "0xAb"}
DETAILS = {"chain_id": 31337, "from": "0xAb", "nonce": 7}


def test_a_transaction_enters_once_and_messages_not_at_all(tmp_path: Path) -> None:
    store = GatewayStore(tmp_path / "gw.db")
    row = signed_transaction("request-1", "ethereum", "31337", SIGNED, DETAILS)
    assert row is not None
    store.outbox.add(row)
    store.outbox.add(signed_transaction("request-1", "ethereum", "31337", SIGNED, DETAILS))  # type: ignore[arg-type]
    entries, total = store.outbox.page()
    assert total == 1 and entries[0].nonce == 7 and entries[0].raw == "02abcd"
    assert entries[0].raw_bytes() == bytes.fromhex("02abcd") and entries[0].state == "queued"
    message = {"raw": "ab" * 65, "encoding": "hex", "from": "0xAb"}  # a signed message: no txid
    assert signed_transaction("request-2", "ethereum", "31337", message, DETAILS) is None
    assert signed_transaction("request-3", "dogecoin", "main", SIGNED, {}) is None


def test_a_leased_row_is_not_claimed_again_until_released(tmp_path: Path) -> None:
    store = GatewayStore(tmp_path / "gw.db")
    row = signed_transaction("request-1", "ethereum", "31337", SIGNED, DETAILS)
    assert row is not None
    store.outbox.add(row)
    other = GatewayStore(tmp_path / "gw.db")  # a second broadcaster's connection
    now = row[10] + 1
    assert len(store.outbox.claim(now, 30.0)) == 1
    assert other.outbox.claim(now, 30.0) == [] and other.outbox.claim(now + 29, 30.0) == []
    assert len(other.outbox.claim(now + 31, 30.0)) == 1  # the first one's lease ran out
    assert store.outbox.claim(now + 31, 30.0, chains=[("ethereum", "1")]) == []
    other.close()


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"state": "lost"}, "state must be one of"),
        ({"colour": "red"}, "not an updatable outbox column: ['colour']"),
        ({"created": 0.0}, "not an updatable outbox column: ['created']"),
    ],
)
def test_bad_updates_are_refused_and_nothing_changes(
    tmp_path: Path, fields: dict[str, object], words: str
) -> None:
    store = GatewayStore(tmp_path / "gw.db")
    row = signed_transaction("request-1", "ethereum", "31337", SIGNED, DETAILS)
    assert row is not None
    store.outbox.add(row)
    before = store.outbox.get(SIGNED["txid"])
    with pytest.raises(ValueError) as bad:
        store.outbox.update(SIGNED["txid"], **fields)
    assert words in str(bad.value)
    assert store.outbox.get(SIGNED["txid"]) == before
    with pytest.raises(ValueError):
        store.outbox.page(state="lost")
