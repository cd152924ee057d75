"""The signed manifest of one node's backup: what it is, when, and the SHA-256 of each file.

Signed by the node's Ed25519 identity key (the key in the cluster roster) over
`MANIFEST_TAG || canonical JSON` of every field but the signature, so a manifest edited, a file
replaced or truncated, or node 1's backup put under node 2's name is refused before any restore.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tholos.backup.errors import BackupError

MANIFEST_FORMAT = "tholos-node-backup-v1"
MANIFEST_TAG = b"tholos/backup-manifest/v1\x00"
MANIFEST_FILE = "manifest.json"
PAYLOAD_FILE = "payload.tar.age"
CLUSTER_FILE = "cluster.tar.age"
AGE_HEADER = b"age-encryption.org/v1\n"


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def roster_digest(roster: list[dict[str, Any]]) -> str:
    """SHA-256 of the cluster's identity roster: what a set of backups belongs to."""
    return hashlib.sha256(canonical(sorted(roster, key=lambda r: int(r["node_id"])))).hexdigest()


def cluster_id(cluster_manifest: dict[str, Any]) -> str:
    """The governed cluster's id; an ungoverned cluster is named by its roster digest."""
    gov = cluster_manifest.get("governance") or {}
    cid = gov.get("cluster_id")
    return str(cid) if cid else "roster-" + roster_digest(cluster_manifest["roster"])[:32]


def file_entry(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def sign(body: dict[str, Any], identity_seed: bytes) -> dict[str, Any]:
    sig = Ed25519PrivateKey.from_private_bytes(identity_seed).sign(MANIFEST_TAG + canonical(body))
    return {**body, "signature": sig.hex()}


def check_signature(manifest: dict[str, Any], signing_key_hex: str, where: str) -> None:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(signing_key_hex)).verify(
            bytes.fromhex(str(manifest.get("signature", ""))), MANIFEST_TAG + canonical(body)
        )
    except (InvalidSignature, ValueError):
        raise BackupError(
            f"{where}: manifest signature does not verify under node "
            f"{manifest.get('node_id')}'s identity key (tampered or from another node)"
        ) from None


def check_file(path: Path, entry: dict[str, Any], where: str) -> None:
    """The file is there, has the size and SHA-256 the manifest names, and is an age file."""
    if not path.is_file():
        raise BackupError(f"{where}: {path.name} is missing")
    got = file_entry(path)
    if got["size"] != entry.get("size"):
        raise BackupError(
            f"{where}: {path.name} is {got['size']} bytes, the manifest says {entry.get('size')} "
            "(truncated or replaced)"
        )
    if got["sha256"] != entry.get("sha256"):
        raise BackupError(f"{where}: {path.name} does not match its SHA-256 in the manifest")
    with path.open("rb") as f:
        if f.read(len(AGE_HEADER)) != AGE_HEADER:
            raise BackupError(f"{where}: {path.name} is not an age-encrypted file")
