"""The node-side flow end to end, as integration will wire it: n=5 nodes, t=3, W=R=3.

Each node has its own governance state, SQLite journal, identity key and audit chain; the
"gateway" here only moves signed objects between them. Also: every refusal of the quorum read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tholos.audit import (
    KIND_DECISION,
    KIND_RESERVATION,
    KIND_SIGNATURE_RELEASED,
    KIND_SIGNATURE_SHARE,
    AuditLog,
    cross_check,
    released_signatures,
    verify_chain,
)
from tholos.governance import (
    Accept,
    Approval,
    Evaluator,
    GovernanceState,
    JournalEntry,
    JournalSnapshot,
    Refuse,
    Reservation,
    ReservationReceipt,
    SigningRequest,
    SQLiteJournal,
    decision_record,
    journal_entry,
    load_genesis,
    public_key_hex,
    sign_receipt,
    sign_snapshot,
    verify_quorum_read,
)

from .conftest import CLUSTER, NOW, Cluster, entry, evaluator

N, T, W, R = 5, 3, 3, 3
WINDOW = 86400


@dataclass
class Node:
    node_id: str
    key: Ed25519PrivateKey
    state: GovernanceState
    journal: SQLiteJournal
    audit: AuditLog
    evaluator: Evaluator

    def reserve(self, request: SigningRequest) -> ReservationReceipt | Refuse:
        prepared = self.evaluator.prepare_reservation(self.state, request, NOW)
        if isinstance(prepared, Refuse):
            return prepared
        assert isinstance(prepared, Reservation)
        refusal = self.journal.reserve(prepared.entry, prepared.limits)
        entry = prepared.entry if refusal is None else _refused(prepared.entry)
        self.audit.append(
            KIND_RESERVATION, {"request_id": entry.request_id, "status": entry.status}
        )
        return sign_receipt(CLUSTER, self.node_id, entry, self.key)

    def snapshot(
        self, request: SigningRequest, receipts: list[ReservationReceipt]
    ) -> JournalSnapshot:
        candidate = journal_entry(self.state, request.intent)
        return sign_snapshot(
            CLUSTER, self.node_id, candidate, receipts, self.journal.entries(), WINDOW, self.key
        )

    def sign(
        self,
        request: SigningRequest,
        approvals: list[Approval],
        receipts: list[ReservationReceipt],
        snapshots: list[JournalSnapshot],
        node_keys: dict[str, bytes],
    ) -> Accept | Refuse:
        candidate = journal_entry(self.state, request.intent)
        entries = verify_quorum_read(
            CLUSTER,
            candidate,
            receipts,
            snapshots,
            node_keys,
            write_quorum=W,
            read_quorum=R,
            refusal_quorum=N - T + 1,
            max_window=WINDOW,
        )
        if isinstance(entries, Refuse):
            decision: Accept | Refuse = entries
        else:
            decision = self.evaluator.evaluate(
                self.state, request, approvals, now=NOW, seen=self.journal, velocity_entries=entries
            )
        self.audit.append(
            KIND_DECISION, decision_record(request.intent.request_id, request.digest(), decision)
        )
        if isinstance(decision, Accept):
            self.journal.mark_signed(request.intent.request_id)  # before the share leaves
            self.audit.append(
                KIND_SIGNATURE_SHARE,
                {"request_id": request.intent.request_id, "digest": decision.digest.hex()},
            )
        return decision


def _refused(entry: JournalEntry) -> JournalEntry:
    return replace(entry, status="refused")


@pytest.fixture
def nodes(cluster: Cluster, tmp_path: Path) -> list[Node]:
    genesis = cluster.genesis().model_dump_json().encode()  # what every node starts from
    out = []
    for i in range(1, N + 1):
        key = Ed25519PrivateKey.generate()
        out.append(
            Node(
                f"node-{i}",
                key,
                load_genesis(genesis),
                SQLiteJournal(tmp_path / f"node-{i}-journal.db"),
                AuditLog(tmp_path / f"node-{i}-audit.db", f"node-{i}", key, checkpoint_every=4),
                evaluator(),
            )
        )
    return out


def _keys(nodes: list[Node]) -> dict[str, bytes]:
    return {n.node_id: bytes.fromhex(public_key_hex(n.key)) for n in nodes}


def test_full_flow_and_audit(cluster: Cluster, nodes: list[Node], tmp_path: Path) -> None:
    gateway = AuditLog(tmp_path / "gw.db", "gateway", Ed25519PrivateKey.generate())
    signed_total = 0
    for i, amount in enumerate([9_000, 9_000, 9_000]):  # key-day limit is 25,000
        req = cluster.request(request_id=f"req-{i:06d}", amount=amount)
        receipts = [r for n in nodes if isinstance(r := n.reserve(req), ReservationReceipt)]
        assert len(receipts) == N
        assert all(r.entry.status == ("refused" if i == 2 else "pending") for r in receipts)
        snapshots = [n.snapshot(req, receipts) for n in nodes[-R:]]
        approvals = cluster.approvals(req, "tina")
        signers = [n for n in nodes if n.journal.status(req.intent.request_id) == "pending"][:T]
        decisions = [n.sign(req, approvals, receipts, snapshots, _keys(nodes)) for n in signers]
        if len(decisions) == T and all(d.accepted for d in decisions):
            signed_total += amount
            gateway.append(
                KIND_SIGNATURE_RELEASED,
                {"request_id": req.intent.request_id, "digest": req.digest().hex()},
            )
    assert signed_total == 18_000  # the third request was refused at reservation
    chains = {}
    for n in nodes:
        report = verify_chain(list(n.audit.export_lines()), n.key.public_key(), checkpoint_every=4)
        assert report.ok, report.issues
        chains[n.node_id] = report.entries
    assert cross_check(released_signatures(gateway.entries()), chains, T) == []


def _setup(
    cluster: Cluster, nodes: list[Node]
) -> tuple[SigningRequest, list[ReservationReceipt], list[JournalSnapshot], JournalEntry]:
    req = cluster.request()
    receipts = [r for n in nodes[:W] if isinstance(r := n.reserve(req), ReservationReceipt)]
    snapshots = [n.snapshot(req, receipts) for n in nodes[-R:]]
    return req, receipts, snapshots, journal_entry(nodes[0].state, req.intent)


def _read(
    nodes: list[Node],
    candidate: JournalEntry,
    receipts: list[ReservationReceipt],
    snapshots: list[JournalSnapshot],
) -> list[JournalEntry] | Refuse:
    return verify_quorum_read(
        CLUSTER,
        candidate,
        receipts,
        snapshots,
        _keys(nodes),
        write_quorum=W,
        read_quorum=R,
        refusal_quorum=N - T + 1,
        max_window=WINDOW,
    )


def test_quorum_read_accepts(cluster: Cluster, nodes: list[Node]) -> None:
    _, receipts, snapshots, candidate = _setup(cluster, nodes)
    merged = _read(nodes, candidate, receipts, snapshots)
    assert isinstance(merged, list) and [e.request_id for e in merged] == ["req-000001"]


def test_quorum_read_refusals(cluster: Cluster, nodes: list[Node]) -> None:
    req, receipts, snapshots, candidate = _setup(cluster, nodes)

    def refused(result: list[JournalEntry] | Refuse, rule_id: str) -> None:
        assert isinstance(result, Refuse) and result.rule_id == rule_id, result

    refused(_read(nodes, candidate, receipts[:2], snapshots), "write-quorum")
    refused(_read(nodes, candidate, [*receipts[:2], receipts[1]], snapshots), "write-quorum")
    forged = receipts[0].model_copy(update={"node_id": "node-5"})
    refused(_read(nodes, candidate, [*receipts[1:], forged], snapshots), "write-quorum")
    other = cluster.request(request_id="req-000099")
    other_receipt = nodes[3].reserve(other)
    assert isinstance(other_receipt, ReservationReceipt)
    refused(_read(nodes, candidate, [*receipts, other_receipt], snapshots), "write-quorum")
    stranger = sign_receipt(CLUSTER, "node-9", candidate, Ed25519PrivateKey.generate())
    refused(_read(nodes, candidate, [*receipts, stranger], snapshots), "write-quorum")
    refused(_read(nodes, candidate, receipts, snapshots[:2]), "read-quorum")
    early = [n.snapshot(req, receipts[:1]) for n in nodes[-R:]]  # before the write quorum
    refused(_read(nodes, candidate, receipts, early), "read-quorum")
    doctored = snapshots[0].model_copy(update={"entries": ()})  # gateway drops entries
    refused(_read(nodes, candidate, receipts, [doctored, *snapshots[1:]]), "read-quorum")
    narrow = [
        sign_snapshot(CLUSTER, n.node_id, candidate, receipts, [], 60, n.key) for n in nodes[-R:]
    ]
    refused(_read(nodes, candidate, receipts, narrow), "read-quorum")


def test_node_that_did_not_reserve_refuses(cluster: Cluster, nodes: list[Node]) -> None:
    req, receipts, snapshots, _ = _setup(cluster, nodes)
    outsider = nodes[-1]  # not among the writers
    decision = outsider.sign(req, cluster.approvals(req, "tina"), receipts, snapshots, _keys(nodes))
    assert isinstance(decision, Refuse) and decision.rule_id == "not-reserved"
    insider = nodes[0]
    assert insider.sign(
        req, cluster.approvals(req, "tina"), receipts, snapshots, _keys(nodes)
    ).accepted
    again = insider.sign(req, cluster.approvals(req, "tina"), receipts, snapshots, _keys(nodes))
    assert isinstance(again, Refuse) and again.rule_id == "replay"


def test_snapshot_holds_only_what_can_count(cluster: Cluster, nodes: list[Node]) -> None:
    _, receipts, _, candidate = _setup(cluster, nodes)
    journal = [
        entry("a-0000001", 1, key_id="k1"),
        entry("a-0000002", 2, key_id="k2"),  # same wallet
        entry("a-0000003", 3, key_id="k9", wallet=None),  # unrelated key
        entry("a-0000004", 4, asset="ETH"),
        entry("a-0000005", 5, time=candidate.time - WINDOW),  # outside the window
    ]
    n = nodes[0]
    snap = sign_snapshot(CLUSTER, n.node_id, candidate, receipts, journal, WINDOW, n.key)
    assert [e.request_id for e in snap.entries] == ["a-0000001", "a-0000002"]
    other_scope = sign_snapshot(
        CLUSTER,
        n.node_id,
        replace(candidate, key_id="k9", wallet=None),
        receipts,
        [],
        WINDOW,
        n.key,
    )
    snaps = [other_scope, *[m.snapshot(cluster.request(), receipts) for m in nodes[-2:]]]
    result = _read(nodes, candidate, receipts, snaps)
    assert isinstance(result, Refuse) and result.rule_id == "read-quorum"
