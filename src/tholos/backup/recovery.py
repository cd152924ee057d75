"""Each node's recovery key and its officers' shares.

The recovery secret of a node is a random scalar s of the Ed25519 group's prime field (order L),
Shamir-shared k-of-m among the node's recovery officers (`tholos.crypto.hazmat.shamir`). The age
X25519 identity that backups are encrypted to is derived from it:
    key = HKDF-SHA256(ikm = s as 32 big-endian bytes, salt = none, info = AGE_INFO)
    identity = AGE-SECRET-KEY-1 || bech32(key)   (the age format's own encoding of an X25519 key)
so the split is over a field element and k shares give the identity back exactly. The node keeps
only the public recipient (`node-N/recovery.json`): it makes backups without any officer.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bech32
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pyrage import x25519

from tholos.backup.errors import BackupError
from tholos.crypto.errors import InvalidParticipants
from tholos.crypto.groups.ed25519 import ED25519
from tholos.crypto.hazmat import shamir

AGE_INFO = b"tholos/recovery/age-x25519/v1"
SHARE_FORMAT = "tholos-recovery-share-v1"
RECIPIENT_FORMAT = "tholos-recovery-recipient-v1"
RECIPIENT_FILE = "recovery.json"


def age_identity(secret: int) -> x25519.Identity:
    """The age X25519 identity derived from a node's recovery secret (see module docstring)."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=AGE_INFO).derive(
        (secret % ED25519.order).to_bytes(32, "big")
    )
    words = bech32.convertbits(key, 8, 5)
    if words is None:  # pragma: no cover - convertbits only fails on out-of-range input
        raise BackupError("cannot encode the recovery key")
    return x25519.Identity.from_str(bech32.bech32_encode("age-secret-key-", words).upper())


def _checksum(body: dict[str, Any]) -> str:
    fields = {k: v for k, v in body.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class OfficerShare:
    """One officer's share of one node's recovery secret, as read from its file."""

    cluster_id: str
    node_id: int
    officer: int
    threshold: int
    officers: int
    recipient: str
    share: int

    def __repr__(self) -> str:
        return f"OfficerShare(node={self.node_id}, officer={self.officer}, <secret>)"

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "format": SHARE_FORMAT,
            "cluster_id": self.cluster_id,
            "node_id": self.node_id,
            "officer": self.officer,
            "threshold": self.threshold,
            "officers": self.officers,
            "recipient": self.recipient,
            "share": f"{self.share:064x}",
        }
        body["checksum"] = _checksum(body)
        return json.dumps(body, indent=2)

    @classmethod
    def load(cls, path: Path) -> OfficerShare:
        try:
            body = json.loads(path.read_text())
            if body.get("format") != SHARE_FORMAT:
                raise BackupError(f"{path} is not a tholos recovery officer share")
            if body.get("checksum") != _checksum(body):
                raise BackupError(f"officer share {path} is damaged (checksum mismatch)")
            return cls(
                str(body["cluster_id"]),
                int(body["node_id"]),
                int(body["officer"]),
                int(body["threshold"]),
                int(body["officers"]),
                str(body["recipient"]),
                int(str(body["share"]), 16),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupError(f"cannot read officer share {path}: {type(exc).__name__}") from None


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def split_recovery_key(
    cluster_id: str, node_id: int, officers: int, threshold: int
) -> tuple[str, list[OfficerShare]]:
    """A fresh recovery key for a node: (its age recipient, the officers' shares). The secret
    exists only inside this call."""
    if not 1 <= threshold <= officers:
        raise BackupError(
            f"recovery threshold must satisfy 1 <= K <= M (K={threshold}, M={officers})"
        )
    secret = ED25519.random_scalar()
    recipient = str(age_identity(secret).to_public())
    points = shamir.split(ED25519, secret, threshold, list(range(1, officers + 1)))
    shares = [
        OfficerShare(cluster_id, node_id, i, threshold, officers, recipient, y)
        for i, y in points.items()
    ]
    return recipient, shares


def write_recovery(
    root: Path, cluster_id: str, node_ids: list[int], officers: int, threshold: int
) -> dict[str, Any]:
    """Give every node a recovery key: `root/node-N/recovery.json` (public recipient) and the
    officer share files `root/recovery/node-N/officer-I.json` (0600, one per officer to hand out)."""
    out: dict[str, Any] = {}
    for node_id in node_ids:
        recipient, shares = split_recovery_key(cluster_id, node_id, officers, threshold)
        d = root / "recovery" / f"node-{node_id}"
        d.mkdir(parents=True, exist_ok=True)
        (root / "recovery").chmod(0o700)
        d.chmod(0o700)
        for s in shares:
            _write_private(d / f"officer-{s.officer}.json", s.to_json())
        rec = {
            "format": RECIPIENT_FORMAT,
            "cluster_id": cluster_id,
            "node_id": node_id,
            "recipient": recipient,
            "threshold": threshold,
            "officers": officers,
        }
        (root / f"node-{node_id}" / RECIPIENT_FILE).write_text(json.dumps(rec, indent=2))
        out[str(node_id)] = {"recipient": recipient, "shares": str(d)}
    return out


def read_recipient(node_dir: Path) -> dict[str, Any]:
    """The node's public recovery description; refused when the node has no recovery key."""
    path = node_dir / RECIPIENT_FILE
    if not path.exists():
        raise BackupError(
            f"{node_dir.name} has no recovery key ({path} missing): give the cluster recovery "
            "officers (`tholos cluster init --recovery-officers M --recovery-threshold K`, or "
            "`tholos backup officers`)"
        )
    rec: dict[str, Any] = json.loads(path.read_text())
    if rec.get("format") != RECIPIENT_FORMAT:
        raise BackupError(f"{path} is not a tholos recovery recipient file")
    return rec


def combine(shares: list[OfficerShare], cluster_id: str, node_id: int, recipient: str) -> Any:
    """The node's age identity from K of its officers' shares; refused (naming why) when fewer
    than K are given, when a share is for another node or cluster, or when they do not give back
    the recipient the node's signed manifest names."""
    for s in shares:
        if s.node_id != node_id or s.cluster_id != cluster_id:
            raise BackupError(
                f"officer {s.officer}'s share is for node {s.node_id} of cluster {s.cluster_id}, "
                f"not node {node_id} of cluster {cluster_id}"
            )
    if not shares:
        raise BackupError(f"node {node_id}: no officer share given")
    k = shares[0].threshold
    distinct = {s.officer: s for s in shares}
    if len(distinct) < k:
        raise BackupError(
            f"node {node_id}: {len(distinct)} distinct officer share(s) given, {k} needed; "
            "nothing of this node is restored"
        )
    try:
        secret = shamir.interpolate(
            {i: s.share for i, s in list(distinct.items())[:k]}, ED25519.order
        )
    except InvalidParticipants as exc:
        raise BackupError(f"node {node_id}: unusable officer shares ({exc})") from None
    identity = age_identity(secret)
    if str(identity.to_public()) != recipient:
        raise BackupError(
            f"node {node_id}: the officer shares do not give back its recovery key "
            "(a wrong, altered or foreign share)"
        )
    return identity
