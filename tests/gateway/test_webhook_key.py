"""The webhook signing key lives in a key file of its own, never in monitor.db: created 0600 on
first start, moved out of a database from before (same public key, the seed's bytes gone from
every page), refused when others can read it; deliveries still verify with libsodium; a rotation
signs with a new key and lists the old public key for its grace period."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from tests.gateway.test_monitoring import Receiver
from tholos.cluster.layout import ClusterDir, init_cluster
from tholos.gateway import monitor_service
from tholos.gateway.api import create_app
from tholos.gateway.deposit_watch import DepositWatcher
from tholos.gateway.monitoring_api import Monitor, attach
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


@pytest.mark.asyncio
async def test_rotation_signs_with_a_new_key_and_lists_the_old_one_for_its_grace(
    tmp_path: Path, started: list[threading.Event]
) -> None:
    monitor, key_file = _start(tmp_path, started)
    old = monitor.webhooks.public_key.hex()
    app = create_app(lambda: None)  # type: ignore[arg-type,return-value]  # no gateway needed
    attach(app, monitor)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as api:
        shown = (await api.get("/v1/webhooks/key")).json()
        assert shown == {"algorithm": "ed25519", "public_key": old, "previous": []}
        for bad in ({"grace_seconds": -1}, {"grace_seconds": 10**9}, {"grace": 5}):
            r = await api.post("/v1/webhooks/key/rotate", json=bad)
            assert r.status_code in (400, 422) and "error" in r.json(), r.text
        assert monitor.webhooks.public_key.hex() == old  # refused: nothing changed
        r = await api.post("/v1/webhooks/key/rotate", json={"grace_seconds": 3600})
        assert r.status_code == 200, r.text
        rotated = r.json()
        new = rotated["public_key"]
        assert new != old and [p["public_key"] for p in rotated["previous"]] == [old]
        (previous,) = rotated["previous"]
        assert previous["until"] == pytest.approx(previous["retired_at"] + 3600)
        assert (await api.get("/v1/webhooks/key")).json() == rotated
        again = (await api.post("/v1/webhooks/key/rotate", json={"grace_seconds": 0})).json()
        assert [p["public_key"] for p in again["previous"]] == [old]  # the one after: no grace
    seed = bytes.fromhex(key_file.read_text())
    assert bytes(SigningKey(seed).verify_key).hex() == again["public_key"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert seed not in _database_bytes(tmp_path)
    body = b'{"id":"e"}'
    headers = monitor.webhooks.headers("deposit.seen", "e", body, 1000.0)
    VerifyKey(bytes.fromhex(again["public_key"])).verify(
        b"1000." + body, bytes.fromhex(headers["x-tholos-signature"].removeprefix("ed25519="))
    )
    restarted, _ = _start(tmp_path, started)
    assert restarted.webhooks.public_key.hex() == again["public_key"]


@pytest.mark.asyncio
async def test_a_monitor_without_a_key_file_cannot_rotate(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "monitor.db", check_same_thread=False)
    hooks = Webhooks(db)  # a key of its own, in memory
    app = create_app(lambda: None)  # type: ignore[arg-type,return-value]
    attach(app, Monitor(DepositWatcher(db, {}, hooks), hooks))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as api:
        r = await api.post("/v1/webhooks/key/rotate", json={})
    db.close()
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_key_file", r.text
