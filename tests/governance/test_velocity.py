"""Velocity: the pure arithmetic, the SQLite journal under concurrency, and the quorum protocol."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tholos.governance import (
    AlreadySigned,
    JournalEntry,
    JournalError,
    SQLiteJournal,
    VelocityLimit,
    check_velocity,
    merge_quorum,
)
from tholos.governance.velocity import EntryStatus

from .conftest import NOW, entry

DAY = VelocityLimit(limit_id="day", scope="key", window_seconds=86400, max_amount=1000)


def test_check_velocity_amount_count_window() -> None:
    limits = [
        VelocityLimit(limit_id="v", scope="key", window_seconds=3600, max_amount=100, max_count=3)
    ]
    cand = entry("c-0000001", 40, time=NOW)
    assert check_velocity([entry("a-0000001", 60, time=NOW - 10)], cand, limits) is None
    over = check_velocity([entry("a-0000001", 61, time=NOW - 10)], cand, limits)
    assert over is not None and over.rule_id == "v"
    old = [entry("a-0000001", 100, time=NOW - 3600)]  # window: (created_at - 3600, ...)
    assert check_velocity(old, cand, limits) is None
    future = [entry("a-0000001", 100, time=NOW + 500)]  # dated in the future: counts
    assert check_velocity(future, cand, limits) is not None
    three = [entry(f"a-{i:07d}", 1, time=NOW) for i in range(3)]
    assert check_velocity(three, cand, limits) is not None
    signed = [entry("a-0000001", 61, time=NOW, status="signed")]
    assert check_velocity(signed, cand, limits) is not None


def test_wallet_scope_falls_back_to_key() -> None:
    limits = [VelocityLimit(limit_id="w", scope="wallet", window_seconds=3600, max_amount=100)]
    other_key_same_wallet = [entry("a-0000001", 80, key_id="k2")]
    assert check_velocity(other_key_same_wallet, entry("c-0000001", 30), limits) is not None
    no_wallet = entry("c-0000001", 30, wallet=None)
    assert check_velocity(other_key_same_wallet, no_wallet, limits) is None


def test_merge_quorum_union_and_release() -> None:
    a = entry("a-0000001", 10)
    b = entry("b-0000001", 20)
    snaps = {
        "n1": [a, entry("b-0000001", 25)],
        "n2": [b],
        "n3": [entry("a-0000001", 10, status="signed")],
    }
    merged = {e.request_id: e for e in merge_quorum(snaps, read_quorum=3, refusal_quorum=2)}
    assert merged["a-0000001"].status == "signed"
    assert merged["b-0000001"].amount == 25  # the larger claim counts
    refused = {f"n{i}": [entry("r-0000001", 5, status="refused")] for i in range(2)}
    refused["n9"] = [entry("r-0000001", 5)]
    assert merge_quorum(refused, 3, 2)[0].status == "refused"
    assert merge_quorum(refused, 3, 3)[0].status == "pending"  # could still be signed
    with pytest.raises(ValueError):
        merge_quorum(snaps, read_quorum=4, refusal_quorum=2)


def test_single_phase_reservation_is_not_enough() -> None:
    """Why reads must follow writes (velocity.py): reserving and reading in one step per node
    lets three requests of 40 under a limit of 100 all pass with quorums of 2 out of 3."""
    journals: dict[str, list[JournalEntry]] = {"1": [], "2": [], "3": []}
    limit = [VelocityLimit(limit_id="v", scope="key", window_seconds=3600, max_amount=100)]
    placement = {"A": ("1", "3"), "B": ("1", "2"), "C": ("2", "3")}
    schedule = [("A", "1"), ("B", "2"), ("C", "3"), ("B", "1"), ("C", "2"), ("A", "3")]
    seen: dict[str, dict[str, list[JournalEntry]]] = {r: {} for r in placement}
    for req, node in schedule:
        journals[node].append(entry(f"{req}-0000001", 40, time=NOW))
        seen[req][node] = list(journals[node])
    passed = [
        r
        for r in placement
        if check_velocity(merge_quorum(seen[r], 2, 3), entry(f"{r}-0000001", 40, time=NOW), limit)
        is None
    ]
    assert passed == ["A", "B", "C"]  # 120 > 100: the naive scheme over-spends
    # two-phase: read after all writes are done -> everybody sees everything
    after = {r: {n: list(journals[n]) for n in placement[r]} for r in placement}
    assert all(
        check_velocity(merge_quorum(after[r], 2, 3), entry(f"{r}-0000001", 40, time=NOW), limit)
        is not None
        for r in placement
    )


def test_journal_lifecycle(tmp_path: Path) -> None:
    j = SQLiteJournal(tmp_path / "j.db")
    e = entry("req-000001", 600, time=NOW)
    assert j.reserve(e, [DAY]) is None
    assert j.status("req-000001") == "pending"
    assert j.reserve(e, [DAY]) is None  # idempotent retry
    with pytest.raises(JournalError):
        j.reserve(entry("req-000001", 601, time=NOW), [DAY])
    second = entry("req-000002", 500, time=NOW)
    refusal = j.reserve(second, [DAY])
    assert refusal is not None and refusal.rule_id == "day"
    assert j.status("req-000002") == "refused"
    again = j.reserve(second, [DAY])
    assert again is not None and again.rule_id == "journal"
    j.mark_signed("req-000001")
    with pytest.raises(AlreadySigned):
        j.mark_signed("req-000001")
    with pytest.raises(JournalError):
        j.mark_signed("req-000002")
    with pytest.raises(JournalError):
        j.mark_signed("nope-000001")
    with pytest.raises(AlreadySigned):
        j.mark_refused("req-000001", "late")
    assert j.reserve(entry("req-000003", 400, time=NOW), [DAY]) is None
    assert [x.request_id for x in j.entries()] == ["req-000001", "req-000002", "req-000003"]
    assert j.entries(since=NOW)[:0] == []
    assert j.expire(NOW + 3600) == 1
    assert j.status("req-000003") == "refused"
    big = entry("req-000004", 2**70, time=NOW)  # amounts beyond 64 bits survive storage
    j.reserve(big, [])
    assert [x.amount for x in j.entries() if x.request_id == "req-000004"] == [2**70]
    j.close()
    reopened = SQLiteJournal(tmp_path / "j.db")
    assert reopened.status("req-000001") == "signed"
    reopened.close()


@pytest.mark.parametrize("shared", [True, False], ids=["one-connection", "connection-per-thread"])
def test_concurrent_reservations_one_journal(tmp_path: Path, shared: bool) -> None:
    path = tmp_path / "j.db"
    journals = [SQLiteJournal(path)] if shared else [SQLiteJournal(path) for _ in range(6)]
    barrier = threading.Barrier(6)

    def worker(w: int) -> int:
        j = journals[0] if shared else journals[w]
        barrier.wait()
        ok = 0
        for i in range(30):
            if j.reserve(entry(f"w{w}-{i:06d}", 10, time=NOW), [DAY]) is None:
                ok += 1
        return ok

    with ThreadPoolExecutor(6) as pool:
        accepted = sum(pool.map(worker, range(6)))
    pending = [e for e in journals[0].entries() if e.status == "pending"]
    assert accepted == len(pending) == 100  # exactly the limit: 1000 / 10
    assert sum(e.amount for e in pending) == 1000
    for j in journals:
        j.close()


def _run_cluster(
    tmp_path: Path, seed: int, n: int = 5, t: int = 3, w: int = 3, r: int = 3
) -> tuple[int, int]:
    """n nodes with their own journals; concurrent requests follow velocity.py's protocol."""
    assert w + r > n
    rng = random.Random(seed)
    journals = [SQLiteJournal(tmp_path / f"seed{seed}-node{i}.db") for i in range(n)]
    limit = [DAY]
    requests = [(f"s{seed}-{i:06d}", rng.randint(50, 300)) for i in range(24)]
    plans = {
        rid: (rng.sample(range(n), w), rng.sample(range(n), r), rng.random() / 4)
        for rid, _ in requests
    }
    barrier = threading.Barrier(len(requests))

    def request(item: tuple[str, int]) -> bool:
        rid, amount = item
        writers, readers, pause = plans[rid]
        candidate = entry(rid, amount, time=NOW)
        barrier.wait()
        time.sleep(pause)  # staggered arrivals, some overlapping
        pended = [i for i in writers if journals[i].reserve(candidate, limit) is None]
        if len(pended) < w:
            for j in journals:  # abort everywhere: n - t + 1 tombstones release it
                j.refuse(candidate, "write quorum not reached")
            return False
        snapshots = {str(i): journals[i].entries() for i in readers}
        merged = merge_quorum(snapshots, read_quorum=r, refusal_quorum=n - t + 1)
        if check_velocity(merged, candidate, limit) is not None:
            for j in journals:
                j.refuse(candidate, "velocity")
            return False
        for i in pended[:t]:
            journals[i].mark_signed(rid)
        return True

    with ThreadPoolExecutor(len(requests)) as pool:
        outcomes = list(pool.map(request, requests))
    signed_ids = {e.request_id for j in journals for e in j.entries() if e.status == "signed"}
    total = sum(a for rid, a in requests if rid in signed_ids)
    assert signed_ids == {rid for (rid, _), ok in zip(requests, outcomes, strict=True) if ok}
    for j in journals:
        j.close()
    return total, len(signed_ids)


@pytest.mark.parametrize("seed", range(4))
def test_quorum_journals_never_overspend(tmp_path: Path, seed: int) -> None:
    total, count = _run_cluster(tmp_path, seed)
    assert total <= 1000  # DAY.max_amount
    assert count >= 1  # and the protocol makes progress


def test_snapshot_entries_feed_merge(tmp_path: Path) -> None:
    """Entries read back from SQLite are what merge_quorum expects (types, statuses)."""
    js = [SQLiteJournal(tmp_path / f"n{i}.db") for i in range(3)]
    for j in js[:2]:
        assert j.reserve(entry("req-000001", 700, time=NOW), [DAY]) is None
    snaps: dict[str, Sequence[JournalEntry]] = {str(i): j.entries() for i, j in enumerate(js)}
    merged = merge_quorum(snaps, 2, 2)
    assert check_velocity(merged, entry("req-000002", 301, time=NOW), [DAY]) is not None
    assert check_velocity(merged, entry("req-000002", 300, time=NOW), [DAY]) is None
    for j in js:
        j.close()


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_quorum_protocol_any_interleaving(data: st.DataObject) -> None:
    """Model check of velocity.py's argument: n=5, W=R=3, t=3; Hypothesis picks the quorums,
    the amounts and the interleaving of every single write and read; no schedule over-spends."""
    n, w, r, t, cap = 5, 3, 3, 3, 100
    limit = [VelocityLimit(limit_id="v", scope="key", window_seconds=3600, max_amount=cap)]
    count = data.draw(st.integers(2, 5))
    amounts = [data.draw(st.integers(10, 80)) for _ in range(count)]
    nodes = st.lists(st.integers(0, n - 1), min_size=3, max_size=3, unique=True)
    writes = [data.draw(nodes) for _ in range(count)]
    reads = [data.draw(nodes) for _ in range(count)]
    journals: list[list[JournalEntry]] = [[] for _ in range(n)]
    progress = [0] * count  # steps done: w writes, then r reads, then the decision
    snapshots: list[dict[str, list[JournalEntry]]] = [{} for _ in range(count)]
    pended = [0] * count
    signed: list[int] = []

    def mine(k: int, status: EntryStatus = "pending") -> JournalEntry:
        return entry(f"q-{k:07d}", amounts[k], time=NOW, status=status)

    def refuse_everywhere(k: int) -> None:
        for j in journals:
            j[:] = [e for e in j if e.request_id != mine(k).request_id]
            j.append(mine(k, "refused"))

    while True:
        active = [k for k in range(count) if progress[k] <= w + r]
        if not active:
            break
        k = data.draw(st.sampled_from(active))
        step = progress[k]
        progress[k] += 1
        if step < w:
            node = journals[writes[k][step]]
            if check_velocity(node, mine(k), limit) is None:
                node.append(mine(k))
                pended[k] += 1
            else:
                node.append(mine(k, "refused"))
        elif step < w + r:
            i = reads[k][step - w]
            snapshots[k][str(i)] = list(journals[i])
        else:
            merged = merge_quorum(snapshots[k], r, n - t + 1)
            if pended[k] == w and check_velocity(merged, mine(k), limit) is None:
                signed.append(k)
            else:
                refuse_everywhere(k)
    assert sum(amounts[k] for k in signed) <= cap
