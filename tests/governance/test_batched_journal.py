"""Batched journal and audit writes used by the node's RPCs (one transaction per batch)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.audit import AuditLog, verify_chain
from tholos.governance import SQLiteJournal, VelocityLimit

from .conftest import entry

LIMIT = VelocityLimit(limit_id="day", scope="key", window_seconds=86400, max_amount=100)


def test_reserve_many_counts_earlier_entries_of_the_batch(tmp_path: Path) -> None:
    j = SQLiteJournal(tmp_path / "j.db")
    out = j.reserve_many([(entry(f"req-{i:06d}", 40), (LIMIT,)) for i in range(3)])
    assert [r is None for r in out] == [True, True, False]  # 40 + 40 + 40 > 100
    assert j.status("req-000002") == "refused"
    again = j.reserve_many([(entry("req-000000", 40), (LIMIT,))])
    assert again == [None]  # idempotent for the same intent


def test_sign_many_is_once_only(tmp_path: Path) -> None:
    j = SQLiteJournal(tmp_path / "j.db")
    j.reserve_many([(entry("req-000001", 10), ())])
    fresh = entry("req-000002", 10)
    assert j.sign_many(["req-000001", "req-000009"], [fresh]) == [
        "",
        "request req-000009 was never reserved here",
        "",
    ]
    assert j.status("req-000001") == "signed" and j.status("req-000002") == "signed"
    assert j.sign_many(["req-000001"], [fresh]) == [
        "request req-000001 is signed here",
        "request req-000002 is signed here",
    ]
    assert [e.request_id for e in j.entries_for("btc", "BTC", "k1", "hot", 0)] == [
        "req-000001",
        "req-000002",
    ]


def test_append_many_chains_and_checkpoints(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    log = AuditLog(tmp_path / "a.db", "node-1", key, checkpoint_every=3)
    log.append("decision", {"n": 0})
    log.append_many([("decision", {"n": i}) for i in range(1, 7)])
    report = verify_chain(list(log.export_lines()), key.public_key(), checkpoint_every=3)
    assert report.ok, report.issues
    assert [e.payload["n"] for e in report.entries] == list(range(7))
    assert [c.seq for c in report.checkpoints] == [3, 6]


def test_sign_many_entries_in_one_statement_keep_per_entry_outcomes(tmp_path: Path) -> None:
    """Unreserved entries: one existence query and one insert; duplicates and known ids refused."""
    j = SQLiteJournal(tmp_path / "j.db")
    j.reserve_many([(entry("req-000001", 10), ()), (entry("req-000003", 10), ())])
    j.refuse(entry("req-000003", 10), "aborted")
    batch = [entry(f"req-{i:06d}", 10) for i in (4, 1, 3, 5, 4)]
    assert j.sign_many([], batch) == [
        "",
        "request req-000001 is pending here",
        "request req-000003 is refused here",
        "",
        "request req-000004 is signed here",
    ]
    assert j.status("req-000004") == "signed" and j.status("req-000005") == "signed"
    assert j.status("req-000001") == "pending" and j.status("req-000003") == "refused"
    many = [entry(f"bulk-{i:06d}", 1) for i in range(1200)]  # more than one query chunk
    assert j.sign_many([], many) == [""] * 1200
    assert j.sign_many([], many[598:603]) == [
        f"request bulk-{i:06d} is signed here" for i in range(598, 603)
    ]
