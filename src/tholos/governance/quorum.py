"""Authenticated quorum reads of journals: signed reservation receipts and journal snapshots.

A node only sees other journals through the untrusted gateway, so both steps of the velocity
protocol (velocity.py) travel as objects signed by the node identity keys:
- a `ReservationReceipt` says "node i recorded this request as pending" (step 1, write);
- a `JournalSnapshot` is node j's relevant entries, taken for one request and binding the digest of
  that request's receipts, which proves it was taken after the write quorum existed (step 2).
`verify_quorum_read` checks both quorums and returns the merged entries for `Evaluator.evaluate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Literal, Protocol

from pydantic import Field

from tholos.governance import _keys
from tholos.governance._canonical import canonical_model, tagged_digest
from tholos.governance._model import FORMAT_VERSION, Hex32, Hex64, Model, Name
from tholos.governance.decision import Refuse
from tholos.governance.errors import InvalidSignature
from tholos.governance.velocity import EntryStatus, JournalEntry, merge_quorum

RECEIPT_TAG = b"tholos/journal-receipt/v1"
SNAPSHOT_TAG = b"tholos/journal-snapshot/v1"


class NodeSigner(Protocol):
    """The node identity key (or its vault): Ed25519 sign only."""

    def sign(self, data: bytes) -> bytes: ...


class WireEntry(Model):
    """A journal entry as it travels between nodes."""

    request_id: str
    key_id: str
    wallet: str | None
    chain: str
    asset: str
    amount: Annotated[int, Field(ge=0)]
    time: int
    expires_at: int
    status: EntryStatus

    @classmethod
    def of(cls, entry: JournalEntry) -> WireEntry:
        return cls(**vars(entry))

    def entry(self) -> JournalEntry:
        return JournalEntry(
            self.request_id,
            self.key_id,
            self.wallet,
            self.chain,
            self.asset,
            self.amount,
            self.time,
            self.expires_at,
            self.status,
        )


class ReservationReceipt(Model):
    """Node `node_id` recorded `entry` in its journal (status pending or refused)."""

    format: Literal[1] = FORMAT_VERSION
    kind: Literal["reservation_receipt"] = "reservation_receipt"
    cluster_id: Name
    node_id: Name
    entry: WireEntry
    signature: Hex64 = "00" * 64

    def signing_message(self) -> bytes:
        return tagged_digest(RECEIPT_TAG, canonical_model(self, exclude={"signature"}))


class JournalSnapshot(Model):
    """Node `node_id`'s entries that can count against `request_id`'s limits: same (chain, asset),
    same key or same wallet, dated after `since`."""

    format: Literal[1] = FORMAT_VERSION
    kind: Literal["journal_snapshot"] = "journal_snapshot"
    cluster_id: Name
    node_id: Name
    request_id: str
    receipts_digest: Hex32
    key_id: str
    wallet: str | None
    chain: str
    asset: str
    since: int
    entries: tuple[WireEntry, ...]
    signature: Hex64 = "00" * 64

    def signing_message(self) -> bytes:
        return tagged_digest(SNAPSHOT_TAG, canonical_model(self, exclude={"signature"}))


def sign_receipt(
    cluster_id: str, node_id: str, entry: JournalEntry, signer: NodeSigner
) -> ReservationReceipt:
    """What a node returns after `Journal.reserve`."""
    unsigned = ReservationReceipt(cluster_id=cluster_id, node_id=node_id, entry=WireEntry.of(entry))
    return unsigned.model_copy(update={"signature": signer.sign(unsigned.signing_message()).hex()})


def receipts_digest(receipts: Sequence[ReservationReceipt]) -> bytes:
    """Order-independent digest of a set of receipts (what a snapshot binds)."""
    messages = sorted(r.signing_message() + bytes.fromhex(r.signature) for r in receipts)
    return tagged_digest(RECEIPT_TAG + b"/set", b"".join(messages))


def sign_snapshot(
    cluster_id: str,
    node_id: str,
    candidate: JournalEntry,
    receipts: Sequence[ReservationReceipt],
    journal_entries: Sequence[JournalEntry],
    max_window: int,
    signer: NodeSigner,
) -> JournalSnapshot:
    """A node's signed read of its journal for `candidate` (entries that can matter to it)."""
    since = candidate.time - max_window
    wallet = candidate.wallet
    relevant = tuple(
        WireEntry.of(e)
        for e in journal_entries
        if e.chain == candidate.chain
        and e.asset == candidate.asset
        and e.time > since
        and (e.key_id == candidate.key_id or (wallet is not None and e.wallet == wallet))
    )
    unsigned = JournalSnapshot(
        cluster_id=cluster_id,
        node_id=node_id,
        request_id=candidate.request_id,
        receipts_digest=receipts_digest(receipts).hex(),
        key_id=candidate.key_id,
        wallet=candidate.wallet,
        chain=candidate.chain,
        asset=candidate.asset,
        since=since,
        entries=relevant,
    )
    return unsigned.model_copy(update={"signature": signer.sign(unsigned.signing_message()).hex()})


def verify_quorum_read(
    cluster_id: str,
    candidate: JournalEntry,
    receipts: Sequence[ReservationReceipt],
    snapshots: Sequence[JournalSnapshot],
    node_keys: Mapping[str, bytes],
    *,
    write_quorum: int,
    read_quorum: int,
    refusal_quorum: int,
    max_window: int,
) -> list[JournalEntry] | Refuse:
    """Check W pending receipts and R snapshots taken after them; return the merged entries.

    `node_keys` are the cluster's node identity public keys (raw 32 bytes) by node id. Invalid
    or foreign objects refuse (fail closed); duplicates from one node count once.
    """
    pending: dict[str, ReservationReceipt] = {}
    for receipt in receipts:
        key = node_keys.get(receipt.node_id)
        if key is None or receipt.cluster_id != cluster_id:
            return Refuse("write-quorum", f"receipt from unknown node {receipt.node_id}")
        try:
            _keys.verify(key, receipt.signature, receipt.signing_message(), receipt.node_id)
        except InvalidSignature:
            return Refuse("write-quorum", f"receipt of {receipt.node_id} does not verify")
        if not receipt.entry.entry().same_intent(candidate):
            return Refuse("write-quorum", f"receipt of {receipt.node_id} is for another intent")
        if receipt.entry.status == "pending":
            pending[receipt.node_id] = receipt
    if len(pending) < write_quorum:
        return Refuse("write-quorum", f"{len(pending)} reservations, need {write_quorum}")
    expected = receipts_digest(receipts).hex()
    views: dict[str, list[JournalEntry]] = {}
    for snap in snapshots:
        key = node_keys.get(snap.node_id)
        if key is None or snap.cluster_id != cluster_id:
            return Refuse("read-quorum", f"snapshot from unknown node {snap.node_id}")
        try:
            _keys.verify(key, snap.signature, snap.signing_message(), snap.node_id)
        except InvalidSignature:
            return Refuse("read-quorum", f"snapshot of {snap.node_id} does not verify")
        if (
            snap.request_id != candidate.request_id
            or snap.receipts_digest != expected
            or (snap.key_id, snap.wallet) != (candidate.key_id, candidate.wallet)
            or (snap.chain, snap.asset) != (candidate.chain, candidate.asset)
            or snap.since > candidate.time - max_window
        ):
            return Refuse("read-quorum", f"snapshot of {snap.node_id} was not taken for this read")
        views[snap.node_id] = [e.entry() for e in snap.entries]
    if len(views) < read_quorum:
        return Refuse("read-quorum", f"{len(views)} journal snapshots, need {read_quorum}")
    return merge_quorum(views, read_quorum, refusal_quorum)


def quorums(n: int, t: int) -> tuple[int, int, int]:
    """(write, read, refusal) quorums for n nodes, threshold t: W + R > n, refusal n - t + 1."""
    w = n // 2 + 1
    return w, n - w + 1, n - t + 1
