"""The webhook signing key lives in a key file of its own, never in monitor.db: created 0600 on
first start, moved out of a database from before (same public key, the seed's bytes gone from
every page), refused when others can read it; deliveries still verify with libsodium."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from tests.gateway.test_monitoring import Receiver
from tholos.cluster.layout import ClusterDir, init_cluster
from tholos.gateway import monitor_service
from tholos.gateway.monitoring_api import Monitor
from tholos.gateway.webhook_key import WebhookKeyError, open_key
from tholos.gateway.webhooks import Webhooks

UNREACHABLE = "http://127.0.0.1:9/"  # the polling thread's rounds fail; nothing here needs them
# monitor.db as gateways before the key file wrote it: the seed in a row of its own
OLD_SCHEMA = """
CREATE TABLE webhook_key (one INTEGER PRIMARY KEY CHECK (one = 1), seed BLOB);
CREATE TABLE webhooks (
    webhook_id TEXT PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, created_at REAL NOT NULL
);
"""


@pytest.fixture
def started() -> Iterator[list[threading.Event]]:
    """Stops every polling thread a test started."""
    stops: list[threading.Event] = []
    yield stops
    for stop in stops:
        stop.set()


def _start(tmp_path: Path, stops: list[threading.Event], **settings: str) -> tuple[Monitor, Path]:
    cfg = monitor_service.MonitorSettings.from_config(
        {"ethereum_rpc": UNREACHABLE, "interval": 3600, **settings}, tmp_path
    )
    monitor, stop = monitor_service.start(tmp_path / "gateway.db", cfg)
    stops.append(stop)
    return monitor, cfg.webhook_key or tmp_path / "webhook.key"


def _database_bytes(folder: Path) -> bytes:
    """monitor.db with its WAL and shared-memory files, as someone copying them would get."""
    return b"".join(p.read_bytes() for p in sorted(folder.glob("monitor.db*")))


def _old_database(tmp_path: Path, seed: bytes) -> None:
    db = sqlite3.connect(tmp_path / "monitor.db")
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO webhook_key VALUES (1, ?)", (seed,))
    db.execute("INSERT INTO webhooks VALUES ('a' || hex(randomblob(15)), 'http://h/x', "
               "'deposit.seen', 1.0)")  # fmt: skip
    db.commit()
    db.close()


def test_first_start_creates_a_private_key_file_and_the_database_has_no_seed(
    tmp_path: Path, started: list[threading.Event]
) -> None:
    monitor, key_file = _start(tmp_path, started)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    seed = bytes.fromhex(key_file.read_text())
    assert monitor.webhooks.public_key == bytes(SigningKey(seed).verify_key)
    assert seed not in _database_bytes(tmp_path) and seed.hex().encode() not in _database_bytes(
        tmp_path
    )
    again, _ = _start(tmp_path, started)  # a restart reads the same key
    assert again.webhooks.public_key == monitor.webhooks.public_key


def test_a_seed_in_an_old_database_moves_to_the_key_file_with_the_same_public_key(
    tmp_path: Path, started: list[threading.Event]
) -> None:
    seed = bytes(SigningKey.generate())
    _old_database(tmp_path, seed)
    assert seed in _database_bytes(tmp_path)
    monitor, key_file = _start(tmp_path, started, webhook_key="keys/webhook.key")
    assert key_file == tmp_path / "keys" / "webhook.key"
    assert bytes.fromhex(key_file.read_text()) == seed
    assert monitor.webhooks.public_key == bytes(SigningKey(seed).verify_key)
    assert seed not in _database_bytes(tmp_path)
    db = sqlite3.connect(tmp_path / "monitor.db")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert "webhook_key" not in tables
    assert len(monitor.webhooks.subscriptions()) == 1  # the rest of the database is kept


def test_a_key_file_open_to_others_is_refused_and_nothing_changes(
    tmp_path: Path, started: list[threading.Event]
) -> None:
    seed = bytes(SigningKey.generate())
    _old_database(tmp_path, seed)
    key_file = tmp_path / "webhook.key"
    key_file.write_text(seed.hex())
    key_file.chmod(0o640)
    with pytest.raises(
        WebhookKeyError, match=r"webhook\.key is open to group or others \(mode 0640\)"
    ):
        _start(tmp_path, started)
    assert seed in _database_bytes(tmp_path)  # not migrated by a refused start
    key_file.chmod(0o604)
    with pytest.raises(WebhookKeyError, match="mode 0604"):
        _start(tmp_path, started)


def test_a_key_file_and_an_old_seed_that_disagree_are_refused(
    tmp_path: Path, started: list[threading.Event]
) -> None:
    seed = bytes(SigningKey.generate())
    _old_database(tmp_path, seed)
    key_file = tmp_path / "webhook.key"
    key_file.write_text(bytes(SigningKey.generate()).hex())
    key_file.chmod(0o600)
    with pytest.raises(WebhookKeyError, match="hold different keys"):
        _start(tmp_path, started)
    assert seed in _database_bytes(tmp_path)
    key_file.write_text("not hex")
    with pytest.raises(WebhookKeyError, match="not a webhook key file"):
        _start(tmp_path, started)
    key_file.write_text("ab" * 31)
    with pytest.raises(WebhookKeyError, match="32 bytes in hex"):
        _start(tmp_path, started)


@pytest.mark.slow  # a gateway process
def test_the_gateway_refuses_to_start_with_a_loose_key_file(tmp_path: Path) -> None:
    init_cluster(tmp_path / "c", 4, 2)
    path = ClusterDir(tmp_path / "c").gateway_config
    cfg = json.loads(path.read_text())
    cfg["monitor"] = {"ethereum_rpc": UNREACHABLE, "webhook_key": "webhook.key"}
    path.write_text(json.dumps(cfg))
    key_file = path.parent / "webhook.key"
    key_file.write_text(bytes(SigningKey.generate()).hex())
    key_file.chmod(0o644)
    run = subprocess.run(
        [sys.executable, "-m", "tholos", "gateway", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert f"{key_file} is open to group or others (mode 0644): chmod 600 it" in run.stderr


def test_deliveries_verify_under_the_published_key(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "monitor.db")
    hooks = Webhooks(db, key=open_key(tmp_path / "webhook.key", db))
    receiver = Receiver([])
    try:
        hooks.add(receiver.url, ["deposit.seen"])
        assert hooks.emit("deposit.seen", {"chain": "ethereum"}, "event-1", 1000.0)
        assert hooks.deliver_due(1000.0) == 1
    finally:
        receiver.close()
        db.close()
    ((headers, body),) = receiver.got
    seed = bytes.fromhex((tmp_path / "webhook.key").read_text())
    key = VerifyKey(hooks.public_key)
    assert bytes(key) == bytes(SigningKey(seed).verify_key)
    signature = bytes.fromhex(headers["x-tholos-signature"].removeprefix("ed25519="))
    key.verify(headers["x-tholos-timestamp"].encode() + b"." + body, signature)
    with pytest.raises(BadSignatureError):
        key.verify(b"1." + body, signature)
