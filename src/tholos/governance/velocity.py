"""Velocity limits: pure arithmetic over journal entries, node-local or gathered from a quorum.

Design note: velocity across the cluster
========================================
Setting: n nodes, a signature needs t of them; each node has its own journal. Requests for the
same key/wallet may be signed by different subsets, concurrently. A limit L must hold over the
union of all signed requests. A node cannot see the others' journals except through the untrusted
gateway, so every journal read it uses must be a snapshot signed by the node that holds it.

Protocol (the node side; the gateway only carries messages):
1. Write. The request's intent is reserved on a write quorum of W journals: each node atomically
   (one SQLite IMMEDIATE transaction) checks its own journal, then records the entry as
   `pending`, or as `refused` if its own entries already exceed a limit. A node that refused never
   signs that request (refused is terminal for that node).
2. Read. Only after W reservations exist, the gateway collects signed snapshots of R journals
   (taken after step 1 finished; in the wire protocol a snapshot binds the W reservation receipts,
   which proves that ordering). W + R > n.
3. Decide. Each signer merges the R snapshots by request id (`merge_quorum`), counts pending as
   spent, checks the limits including this request (`check_velocity`), and signs only if they
   hold and its own journal still has the request `pending`; it marks it `signed` first. Signers
   are therefore chosen among the nodes holding the reservation: reserve on every reachable node
   (at least W, and at least t for liveness).
4. Abort. A request that misses its write quorum or fails step 3 is refused on every node
   (`SQLiteJournal.refuse`, a tombstone even where it was never reserved), which releases it.

Why no over-spend, even with concurrent requests. Let S be the set of requests that get signed,
and for each Y in S let r(Y) be the moment the first decision read for Y started (step 2). Take X in
S with the latest r(X). Every Y in S finished its W writes before r(Y) <= r(X), so X's read quorum
(R journals) intersects the write quorum of every Y (W + R > n) in a journal that already held Y
as pending or signed. Hence X's merged view contains all of S, and since X was accepted with
pending counted as spent, sum(S) <= L. Concurrency is covered because writes precede reads: two
concurrent requests can both see each other (and both refuse, a liveness cost) but never both miss
each other. Snapshots from up to f dishonest nodes may omit entries; then the intersection
must contain an honest journal: W + R >= n + f + 1 (n=5, f=1: W=R=4; the tests use W=R=3, f=0).
A single-phase scheme (reserve and read in one step per node) is NOT safe: with n=3,
quorums of 2, L=100 and three requests of 40 placed on {1,3}, {1,2}, {2,3}, every node sees at most
80 yet 120 is signed (the test suite reproduces this).

Releasing a reservation. An entry stops counting only when it is certain no t nodes can sign it:
`merge_quorum` drops a request only if at least n - t + 1 of the snapshots say `refused` (so at most
t - 1 nodes could still sign) and none says `signed`. Nodes mark their own expired pending entries
refused (`SQLiteJournal.expire`). Otherwise the request counts, which errs on the safe side.
If copies disagree on an amount (a forging gateway), the largest counts.

Time: an entry's time is the request's `created_at`, identical in every journal (a node refuses to
reserve when `created_at` is further than the policy's clock skew from its own clock, so it cannot
be backdated). Windows are anchored at the candidate's `created_at`, not at the decision time, and
entries dated later always count: for any window I of length T, the request of I decided last sees
every other signed request of I (quorum argument above) and all of them are within T of its own
time, so the sum over I stays <= L however long approvals take. Limits are per (chain, asset) and
per key or per wallet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from tholos.governance.decision import Refuse
from tholos.governance.policy import VelocityLimit

EntryStatus = Literal["pending", "signed", "refused"]


@dataclass(frozen=True)
class JournalEntry:
    """One request as a journal records it. `time` is the request's created_at."""

    request_id: str
    key_id: str
    wallet: str | None
    chain: str
    asset: str
    amount: int
    time: int
    expires_at: int
    status: EntryStatus

    def same_intent(self, other: JournalEntry) -> bool:
        """True if both entries describe the same request (status aside)."""
        return replace(self, status="pending") == replace(other, status="pending")


def check_velocity(
    entries: Iterable[JournalEntry],
    candidate: JournalEntry,
    limits: Sequence[VelocityLimit],
) -> Refuse | None:
    """Refuse if adding `candidate` to the non-refused `entries` breaks any limit; else None.

    A limit counts entries dated after `candidate.time - window` (later ones included): then any
    window containing two signed requests is seen whole by the one decided last (see above).
    """
    if not limits:
        return None
    entries = [
        e
        for e in entries
        if e.status != "refused"
        and e.request_id != candidate.request_id
        and e.chain == candidate.chain
        and e.asset == candidate.asset
    ]
    for limit in limits:
        start = candidate.time - limit.window_seconds
        if limit.scope == "wallet" and candidate.wallet is not None:
            scoped = [e for e in entries if e.wallet == candidate.wallet and e.time > start]
        else:
            scoped = [e for e in entries if e.key_id == candidate.key_id and e.time > start]
        if limit.max_count is not None and len(scoped) + 1 > limit.max_count:
            return Refuse(
                limit.limit_id,
                f"velocity: {len(scoped)} requests in {limit.window_seconds}s, "
                f"at most {limit.max_count}",
            )
        if limit.max_amount is not None:
            spent = sum(e.amount for e in scoped)
            if spent + candidate.amount > limit.max_amount:
                return Refuse(
                    limit.limit_id,
                    f"velocity: {spent} + {candidate.amount} over {limit.window_seconds}s "
                    f"exceeds {limit.max_amount}",
                )
    return None


def merge_quorum(
    snapshots: Mapping[str, Sequence[JournalEntry]],
    read_quorum: int,
    refusal_quorum: int,
) -> list[JournalEntry]:
    """Union by request id of the journals of at least `read_quorum` distinct nodes.

    `refusal_quorum` is n - t + 1: a request is dropped only if that many snapshots say refused
    and none says signed. Otherwise it counts, as signed if any says so, with its largest amount
    and latest time (both conservative).
    """
    if len(snapshots) < read_quorum:
        raise ValueError(f"{len(snapshots)} journals, the read quorum is {read_quorum}")
    copies: dict[str, list[JournalEntry]] = {}
    for entries in snapshots.values():
        seen_here: set[str] = set()
        for entry in entries:
            if entry.request_id in seen_here:
                continue  # one vote per journal
            seen_here.add(entry.request_id)
            copies.setdefault(entry.request_id, []).append(entry)
    merged: list[JournalEntry] = []
    for request_id in sorted(copies):
        group = copies[request_id]
        statuses = [e.status for e in group]
        status: EntryStatus = "pending"
        if "signed" in statuses:
            status = "signed"
        elif statuses.count("refused") >= refusal_quorum:
            status = "refused"
        first = group[0]
        amount = max(e.amount for e in group) if len(group) > 1 else first.amount
        time = max(e.time for e in group) if len(group) > 1 else first.time
        if (first.status, first.amount, first.time) == (status, amount, time):
            merged.append(first)
        else:
            merged.append(replace(first, amount=amount, time=time, status=status))
    return merged
