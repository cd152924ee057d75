"""Audit chain: clean chains verify; every edit, deletion, reordering and truncation is located."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tholos.audit import AuditLog, AuditReport, Checkpoint, entry_hash, verify_chain
from tholos.governance import canonical_json

from .conftest import make_log, sql


def verify(
    log: AuditLog,
    key: Ed25519PrivateKey,
    *,
    node_id: str | None = None,
    known_head: Checkpoint | None = None,
    checkpoint_every: int | None = None,
) -> AuditReport:
    return verify_chain(
        list(log.export_lines()),
        key.public_key(),
        node_id=node_id,
        known_head=known_head,
        checkpoint_every=checkpoint_every,
    )


def at(report: AuditReport, code: str) -> set[int | None]:
    return {i.seq for i in report.issues if i.code == code}


def test_clean_chain(log_path: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(log_path, key, 23)
    cp = log.checkpoint()
    assert (cp.seq, cp.head_hash) == log.head()
    report = verify(log, key, node_id="node-1", checkpoint_every=5, known_head=cp)
    assert report.ok, report.issues
    assert report.last_seq == 23 and len(report.entries) == 23
    assert [c.seq for c in report.checkpoints] == [5, 10, 15, 20, 23]
    first = report.entries[0]
    assert first.prev_hash == "00" * 32
    assert first.hash == entry_hash(
        "node-1", 1, first.time, "decision", first.payload, first.prev_hash
    )


def test_export_file_and_reopen(tmp_path: Path, log_path: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(log_path, key, 7)
    log.close()
    again = AuditLog(log_path, "node-1", key, checkpoint_every=5)
    entry = again.append("governance", {"version": 2})
    assert entry.seq == 8
    out = tmp_path / "chain.jsonl"
    again.export_jsonl(out)
    lines = out.read_text().splitlines()
    assert json.loads(lines[0]) == {"type": "header", "format": 1, "node_id": "node-1"}
    assert verify_chain(lines, key.public_key()).ok


def test_edit_located(log_path: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(log_path, key, 23)
    sql(log_path, """UPDATE audit SET payload = '{"accepted":true}' WHERE seq = 7""")
    report = verify(log, key)
    assert report.codes() == {"edited"} and at(report, "edited") == {7}


def test_edit_with_rehash_located(log_path: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(log_path, key, 23)
    e = log.entries()[6]
    forged = entry_hash("node-1", 7, e.time, e.kind, {"accepted": True}, e.prev_hash)
    payload = canonical_json({"accepted": True}).decode()
    sql(log_path, f"UPDATE audit SET payload = '{payload}', hash = '{forged}' WHERE seq = 7")
    report = verify(log, key)
    assert report.codes() == {"chain-break"} and at(report, "chain-break") == {8}


def test_rewritten_suffix_caught_by_checkpoint(log_path: Path, key: Ed25519PrivateKey) -> None:
    """An attacker who rewrites entry 7 and rehashes everything after it: only signatures stop them."""
    log = make_log(log_path, key, 23)
    entries = log.entries()
    prev = entries[5].hash
    statements = []
    for e in entries[6:]:
        payload = {"accepted": True} if e.seq == 7 else dict(e.payload)
        new = entry_hash("node-1", e.seq, e.time, e.kind, payload, prev)
        text = canonical_json(payload).decode()
        statements.append(
            f"UPDATE audit SET payload = '{text}', prev_hash = '{prev}', hash = '{new}' "
            f"WHERE seq = {e.seq}"
        )
        prev = new
    sql(log_path, *statements)
    report = verify(log, key)
    assert report.codes() == {"checkpoint-mismatch"}
    first = min(report.issues, key=lambda i: i.seq or 0)
    assert first.seq == 10 and "6..10" in first.detail


def test_deletion_located(log_path: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(log_path, key, 23)
    sql(log_path, "DELETE FROM audit WHERE seq = 12")
    report = verify(log, key)
    assert report.codes() == {"gap"} and at(report, "gap") == {12}


def test_reordering_in_sqlite_located(log_path: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(log_path, key, 23)
    sql(
        log_path,
        "UPDATE audit SET seq = -1 WHERE seq = 8",
        "UPDATE audit SET seq = 8 WHERE seq = 9",
        "UPDATE audit SET seq = 9 WHERE seq = -1",
    )
    report = verify(log, key)
    assert at(report, "moved") == {8, 9}
    assert report.codes() <= {"moved", "chain-break"}
    moved = {i.seq: i.detail for i in report.issues if i.code == "moved"}
    assert "is entry 9" in moved[8] and "is entry 8" in moved[9]


def test_reordered_export_lines_located(log_path: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(log_path, key, 8)
    lines = list(log.export_lines())
    i = next(n for n, line in enumerate(lines) if json.loads(line).get("seq") == 3)
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    report = verify_chain(lines, key.public_key())
    assert report.codes() == {"reordered"} and at(report, "reordered") == {3}


def test_truncation_before_checkpoint(log_path: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(log_path, key, 23)
    sql(log_path, "DELETE FROM audit WHERE seq >= 19")
    report = verify(log, key)
    assert report.codes() == {"truncated"} and at(report, "truncated") == {19}
    assert report.last_seq == 18


def test_truncation_after_last_checkpoint_needs_known_head(
    log_path: Path, key: Ed25519PrivateKey
) -> None:
    log = make_log(log_path, key, 23)
    known = log.checkpoint()  # obtained by an auditor or the gateway earlier
    sql(log_path, "DELETE FROM audit WHERE seq > 21", "DELETE FROM audit_checkpoint WHERE seq > 21")
    assert verify(log, key).ok  # undetectable from the chain alone: documented
    report = verify(log, key, known_head=known)
    assert report.codes() == {"truncated"} and at(report, "truncated") == {22}


def test_deleted_checkpoint_and_forged_checkpoint(log_path: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(log_path, key, 23)
    sql(log_path, "DELETE FROM audit_checkpoint WHERE seq = 10")
    report = verify(log, key, checkpoint_every=5)
    assert report.codes() == {"missing-checkpoint"} and at(report, "missing-checkpoint") == {10}
    sql(log_path, "UPDATE audit_checkpoint SET head_hash = '" + "ab" * 32 + "' WHERE seq = 15")
    assert at(verify(log, key), "bad-signature") == {15}
    other = Ed25519PrivateKey.generate()
    assert at(verify(log, other), "bad-signature") == {5, 15, 20}


def test_known_head_of_another_history(
    log_path: Path, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    """A head the auditor saw earlier that this chain does not contain: a rewritten history."""
    log = make_log(log_path, key, 10)
    fork = make_log(tmp_path / "fork.db", key, 2)
    fork.append("decision", {"request_id": "other"})
    for _ in range(3):
        fork.append("decision", {"n": 0})
    fork_head = fork.checkpoint()
    report = verify(log, key, known_head=fork_head)
    assert report.codes() == {"head-mismatch"} and at(report, "head-mismatch") == {6}
    longer = make_log(tmp_path / "longer.db", key, 12).checkpoint()
    assert at(verify(log, key, known_head=longer), "truncated") == {11}
    bogus = Checkpoint("node-1", 6, "cd" * 32, 1, key.sign(b"x").hex())
    assert at(verify(log, key, known_head=bogus), "bad-signature") == {6}


def test_malformed_line(log_path: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(log_path, key, 3)
    lines = [*log.export_lines(), "{not json", json.dumps({"type": "entry", "seq": 9})]
    report = verify_chain(lines, key.public_key())
    assert report.codes() == {"malformed"}


def test_hmac_of_sensitive_values(log_path: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(log_path, key, 0)
    tag = log.hmac("addr-secret")
    assert tag.startswith("hmac-sha256:") and tag == log.hmac(b"addr-secret")
    assert tag != log.hmac("addr-other")
    log.append("decision", {"destination": tag})
    assert verify(log, key).ok


def test_concurrent_appends(log_path: Path, key: Ed25519PrivateKey) -> None:
    log = make_log(log_path, key, 0, every=10)
    barrier = threading.Barrier(4)

    def worker(w: int) -> None:
        barrier.wait()
        for i in range(25):
            log.append("reservation", {"w": w, "i": i})

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify(log, key, checkpoint_every=10)
    assert report.ok and report.last_seq == 100


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seq=st.integers(1, 14),
    change=st.sampled_from(["time", "kind", "payload", "prev_hash", "hash", "delete"]),
)
def test_any_single_row_change_is_located(tmp_path: Path, seq: int, change: str) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / f"h-{seq}-{change}.db"
    path.unlink(missing_ok=True)
    log = make_log(path, key, 15)
    statement = {
        "time": f"UPDATE audit SET time = time + 1 WHERE seq = {seq}",
        "kind": f"UPDATE audit SET kind = 'other' WHERE seq = {seq}",
        "payload": f"""UPDATE audit SET payload = '{{"n":-1}}' WHERE seq = {seq}""",
        "prev_hash": f"UPDATE audit SET prev_hash = '{'ef' * 32}' WHERE seq = {seq}",
        "hash": f"UPDATE audit SET hash = '{'ef' * 32}' WHERE seq = {seq}",
        "delete": f"DELETE FROM audit WHERE seq = {seq}",
    }[change]
    sql(path, statement)
    report = verify(log, key)
    log.close()
    assert not report.ok
    assert seq in {i.seq for i in report.issues}, report.issues


def test_entry_hash_from_encoded_payload_is_the_same() -> None:
    """The log hashes the payload text it stores; that must equal hashing the payload itself."""
    from tholos.audit.records import entry_hash_encoded

    payloads: list[dict[str, object]] = [
        {},
        {"request_id": "r-1", "digest": "ab" * 32, "status": "pending"},
        {"reason": 'quote " back\\\\slash \u00e9 \u2603 \n tab\t', "n": -5, "ok": True, "x": None},
        {"nested": {"b": [1, 2, {"z": "y", "a": []}], "a": "\u0000"}, "big": 2**70},
    ]
    for payload in payloads:
        for kind, node in (("decision", "node-1"), ('sp\u00e9cial "k"', "gate\\way")):
            text = canonical_json(payload).decode()
            assert entry_hash_encoded(node, 3, 1_700_000_000_123, kind, text, "0f" * 32) == (
                entry_hash(node, 3, 1_700_000_000_123, kind, payload, "0f" * 32)
            )
