"""Audit test helpers: a node's log with a deterministic clock, and direct SQLite tampering."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.audit import AuditLog


class Clock:
    def __init__(self) -> None:
        self.now = 1_795_003_200_000

    def __call__(self) -> int:
        self.now += 7
        return self.now


def make_log(
    path: Path, key: Ed25519PrivateKey, entries: int, every: int = 5, node_id: str = "node-1"
) -> AuditLog:
    log = AuditLog(path, node_id, key, checkpoint_every=every, hmac_key=b"k" * 32, clock_ms=Clock())
    for i in range(entries):
        log.append("decision", {"request_id": f"req-{i:06d}", "accepted": i % 3 != 0, "n": i})
    return log


def sql(path: Path, *statements: str) -> None:
    """Tamper with the log file directly, as an attacker with disk access would."""
    db = sqlite3.connect(path)
    with db:
        for statement in statements:
            db.execute(statement)
    db.close()


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def log_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "audit.db"
