"""Audit records: hash-chained entries and signed checkpoints, and their canonical hashes.

entry.hash = SHA-256("tholos/audit/v1/entry" || 0 || canonical({format, node_id, seq, time, kind,
payload, prev_hash})); the first entry has prev_hash = 64 zeros. A checkpoint is the node
identity key's Ed25519 signature over "tholos/audit/v1/checkpoint" || 0 || canonical({format,
node_id, seq, head_hash, time}). `time` is milliseconds since the epoch, UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, Final

from tholos.governance import canonical_json, tagged_digest

FORMAT_VERSION: Final = 1
GENESIS_PREV_HASH: Final = "00" * 32
ENTRY_TAG: Final = b"tholos/audit/v1/entry"
CHECKPOINT_TAG: Final = b"tholos/audit/v1/checkpoint"

# Entry kinds the node and the gateway write; cross-checking relies on the two signature kinds.
KIND_DECISION: Final = "decision"
KIND_RESERVATION: Final = "reservation"
KIND_GOVERNANCE: Final = "governance"
KIND_KILL_SWITCH: Final = "kill_switch"
KIND_SIGNATURE_SHARE: Final = "signature_share"
"""Node: released its share for {"request_id", "digest"}."""
KIND_SIGNATURE_RELEASED: Final = "signature_released"
"""Gateway: released a complete signature for {"request_id", "digest"}."""
KIND_MEASUREMENT: Final = "measurement"
"""Node or gateway: a measurement seen for the first time, {"node", "kind", "software_measurement",
"launch_measurement", "hardware_guarantee", "pinned"} (once per new value per node)."""


def entry_hash(
    node_id: str, seq: int, time: int, kind: str, payload: Mapping[str, Any], prev_hash: str
) -> str:
    """Hex SHA-256 of an entry's canonical encoding, chained to `prev_hash`."""
    body = {
        "format": FORMAT_VERSION,
        "node_id": node_id,
        "seq": seq,
        "time": time,
        "kind": kind,
        "payload": dict(payload),
        "prev_hash": prev_hash,
    }
    return tagged_digest(ENTRY_TAG, canonical_json(body)).hex()


def entry_hash_encoded(
    node_id: str, seq: int, time: int, kind: str, payload_json: str, prev_hash: str
) -> str:
    """`entry_hash` from the payload's canonical JSON text (as stored), without encoding the
    payload a second time. The same bytes: the body's keys in sorted order, the payload spliced
    in as it was encoded (`canonical_json`), every other value encoded as `canonical_json` does."""
    if type(seq) is not int or type(time) is not int:
        raise ValueError("seq and time are integers")
    s = encode_basestring  # what json.dumps(str, ensure_ascii=False) does, without its set-up
    text = (
        f'{{"format":{FORMAT_VERSION},"kind":{s(kind)},"node_id":{s(node_id)},'
        f'"payload":{payload_json},"prev_hash":{s(prev_hash)},"seq":{seq},"time":{time}}}'
    )
    return tagged_digest(ENTRY_TAG, text.encode("utf-8")).hex()


@dataclass(frozen=True)
class AuditEntry:
    """One row of a node's audit chain."""

    node_id: str
    seq: int
    time: int
    kind: str
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str

    def expected_hash(self, seq: int | None = None) -> str:
        """The hash this entry should have (at its own seq, or at `seq`)."""
        return entry_hash(
            self.node_id,
            self.seq if seq is None else seq,
            self.time,
            self.kind,
            self.payload,
            self.prev_hash,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "entry",
            "seq": self.seq,
            "time": self.time,
            "kind": self.kind,
            "payload": dict(self.payload),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Checkpoint:
    """The node's signed statement "my chain had `seq` entries, the last with hash `head_hash`"."""

    node_id: str
    seq: int
    head_hash: str
    time: int
    signature: str

    def message(self) -> bytes:
        return checkpoint_message(self.node_id, self.seq, self.head_hash, self.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "checkpoint",
            "seq": self.seq,
            "head_hash": self.head_hash,
            "time": self.time,
            "signature": self.signature,
        }


def checkpoint_message(node_id: str, seq: int, head_hash: str, time: int) -> bytes:
    body = {
        "format": FORMAT_VERSION,
        "node_id": node_id,
        "seq": seq,
        "head_hash": head_hash,
        "time": time,
    }
    return CHECKPOINT_TAG + b"\x00" + canonical_json(body)
