"""Verify an exported audit chain and locate every problem: edit, gap, reordering, truncation.

Given the JSON lines of `AuditLog.export_lines` and the node's identity public key, the verifier
recomputes every hash, checks every link and checkpoint signature, and reports each issue with the
seq (and line) it concerns. Truncation of entries after the last checkpoint is detectable only
against a head known from elsewhere (`known_head`: a checkpoint obtained earlier, e.g. by the
gateway or a previous audit); truncation before a checkpoint is detected from the checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tholos.audit.records import GENESIS_PREV_HASH, AuditEntry, Checkpoint


@dataclass(frozen=True)
class Issue:
    """One problem: `code` is one of malformed, reordered, duplicate, gap, edited, moved,
    chain-break, bad-signature, checkpoint-mismatch, missing-checkpoint, truncated, head-mismatch.
    """

    code: str
    seq: int | None
    line: int | None
    detail: str


@dataclass
class AuditReport:
    """The verdict on one node's chain."""

    node_id: str | None
    entries: list[AuditEntry] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def last_seq(self) -> int:
        return max((e.seq for e in self.entries), default=0)

    def codes(self) -> set[str]:
        return {i.code for i in self.issues}


def _key(public_key: Ed25519PublicKey | bytes | str) -> Ed25519PublicKey:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key
    raw = bytes.fromhex(public_key) if isinstance(public_key, str) else public_key
    return Ed25519PublicKey.from_public_bytes(raw)


def _signature_ok(key: Ed25519PublicKey, cp: Checkpoint) -> bool:
    try:
        key.verify(bytes.fromhex(cp.signature), cp.message())
    except (InvalidSignature, ValueError):
        return False
    return True


def _parse(
    lines: Iterable[str | bytes], report: AuditReport, node_id: str | None
) -> list[tuple[int, AuditEntry]]:
    parsed: list[tuple[int, AuditEntry]] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if not text.strip():
            continue
        try:
            obj: Any = json.loads(text)
            kind = obj["type"]
            if kind == "header":
                if report.node_id is None:
                    report.node_id = str(obj["node_id"])
                continue
            nid = report.node_id or node_id or ""
            if kind == "entry":
                entry = AuditEntry(
                    nid,
                    int(obj["seq"]),
                    int(obj["time"]),
                    str(obj["kind"]),
                    dict(obj["payload"]),
                    str(obj["prev_hash"]),
                    str(obj["hash"]),
                )
                parsed.append((number, entry))
            elif kind == "checkpoint":
                report.checkpoints.append(
                    Checkpoint(
                        nid,
                        int(obj["seq"]),
                        str(obj["head_hash"]),
                        int(obj["time"]),
                        str(obj["signature"]),
                    )
                )
            else:
                raise ValueError(f"unknown line type {kind!r}")
        except (ValueError, KeyError, TypeError) as exc:
            report.issues.append(Issue("malformed", None, number, f"unreadable line: {exc}"))
    return parsed


def _original_seqs(entries: list[AuditEntry]) -> dict[str, int]:
    """For each stored hash, the seq its entry had when written, following prev_hash links back
    to the genesis (1 + the original seq of its predecessor). Used to tell "moved" from "edited".
    """
    by_hash = {e.hash: e for e in entries}
    original: dict[str, int] = {GENESIS_PREV_HASH: 0}
    for start in entries:
        path: list[str] = []
        current = start.hash
        while current not in original and current in by_hash and len(path) <= len(entries):
            path.append(current)
            current = by_hash[current].prev_hash
        if current not in original:
            continue  # the chain back to the genesis is broken: no original position
        base = original[current]
        for offset, h in enumerate(reversed(path), start=1):
            original[h] = base + offset
    return original


def verify_chain(
    lines: Iterable[str | bytes],
    public_key: Ed25519PublicKey | bytes | str,
    *,
    node_id: str | None = None,
    known_head: Checkpoint | None = None,
    checkpoint_every: int | None = None,
) -> AuditReport:
    """Check an exported chain end to end; every issue found is in the report (nothing raises).

    `node_id`, if given, must match the header. `checkpoint_every`, if given, also requires a
    checkpoint at every multiple of it (deleted checkpoints are reported).
    """
    key = _key(public_key)
    report = AuditReport(node_id=None)
    parsed = _parse(lines, report, node_id)
    if node_id is not None and report.node_id not in (None, node_id):
        report.issues.append(Issue("malformed", None, 1, f"chain of node {report.node_id}"))
    report.node_id = report.node_id or node_id

    # Order of lines as exported: seq must strictly increase.
    last = 0
    for number, entry in parsed:
        if entry.seq <= last:
            report.issues.append(
                Issue("reordered", entry.seq, number, f"seq {entry.seq} after seq {last}")
            )
        last = max(last, entry.seq)

    by_seq: dict[int, tuple[int, AuditEntry]] = {}
    for number, entry in parsed:
        if entry.seq in by_seq:
            report.issues.append(Issue("duplicate", entry.seq, number, "seq appears twice"))
            continue
        by_seq[entry.seq] = (number, entry)
    original_seq = _original_seqs([e for _, e in by_seq.values()])

    expected = 1
    previous: AuditEntry | None = None
    for seq in sorted(by_seq):
        number, entry = by_seq[seq]
        if seq < 1:
            report.issues.append(Issue("malformed", seq, number, "seq must be >= 1"))
            continue
        if seq > expected:
            report.issues.append(
                Issue("gap", expected, number, f"entries {expected}..{seq - 1} are missing")
            )
        if entry.expected_hash() != entry.hash:
            origin = original_seq.get(entry.hash)
            if origin is not None and origin != seq and entry.expected_hash(origin) == entry.hash:
                report.issues.append(
                    Issue("moved", seq, number, f"row stored at seq {seq} is entry {origin}")
                )
            else:
                report.issues.append(
                    Issue("edited", seq, number, "content does not match its hash")
                )
        prev_hash = GENESIS_PREV_HASH if seq == 1 else None
        if previous is not None and previous.seq == seq - 1:
            prev_hash = previous.hash
        if prev_hash is not None and entry.prev_hash != prev_hash:
            report.issues.append(
                Issue(
                    "chain-break",
                    seq,
                    number,
                    f"prev_hash does not match entry {seq - 1}: entry {seq - 1} or {seq} altered",
                )
            )
        previous = entry
        expected = seq + 1
    report.entries = [e for _, (_, e) in sorted(by_seq.items())]
    last_seq = report.last_seq

    entry_at = {e.seq: e for e in report.entries}
    checked_ok = 0
    for cp in sorted(report.checkpoints, key=lambda c: c.seq):
        if not _signature_ok(key, cp):
            report.issues.append(Issue("bad-signature", cp.seq, None, "checkpoint signature"))
            continue
        _check_head(report, cp, entry_at, last_seq, checked_ok, "checkpoint")
        checked_ok = cp.seq
    if checkpoint_every is not None:
        present = {cp.seq for cp in report.checkpoints}
        for seq in range(checkpoint_every, last_seq + 1, checkpoint_every):
            if seq not in present:
                report.issues.append(Issue("missing-checkpoint", seq, None, "deleted checkpoint"))
    if known_head is not None:
        if not _signature_ok(key, known_head):
            report.issues.append(Issue("bad-signature", known_head.seq, None, "known head"))
        else:
            _check_head(report, known_head, entry_at, last_seq, 0, "known head")
    return report


def _check_head(
    report: AuditReport,
    cp: Checkpoint,
    entry_at: dict[int, AuditEntry],
    last_seq: int,
    previous_ok: int,
    what: str,
) -> None:
    if cp.seq > last_seq:
        report.issues.append(
            Issue(
                "truncated",
                last_seq + 1,
                None,
                f"{what} signed seq {cp.seq}; chain ends at {last_seq}",
            )
        )
        return
    if cp.seq == 0:
        return
    entry = entry_at.get(cp.seq)
    if entry is not None and entry.hash != cp.head_hash:
        code = "checkpoint-mismatch" if what == "checkpoint" else "head-mismatch"
        report.issues.append(
            Issue(
                code,
                cp.seq,
                None,
                f"{what} hash differs: entries {previous_ok + 1}..{cp.seq} were rewritten",
            )
        )
