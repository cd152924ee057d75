"""`tholos backup restore DIR --officer-share F ... [--to D]`: rebuild every node of a checked
set for which K of its officers' shares are given.

Everything is checked before anything is written: the set (`verify`), the officer shares (K per
node, giving back the recipient its signed manifest names), each payload's decryption and
content, and, when the target cluster still has other nodes, that the backup is not stale (no key
at an older refresh epoch than a surviving node holds it). Then each node is written to
`D/node-N.restoring` and renamed into place: a fresh node database under a new master key and
passphrase, the shares sealed under it, the identity and TLS keys sealed under the new
passphrase, the node's other files (config, governance and audit databases) as they were.
The cluster files (cluster.json, CA, client, gateway) are written only where D has none.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage

from tholos.backup import archive, manifest
from tholos.backup.errors import BackupError
from tholos.backup.recovery import OfficerShare, combine
from tholos.backup.verify import BackupSet, verify_set
from tholos.node.barrier import Barrier, Unsealer, create_master, seal_file
from tholos.node.store import NodeStore
from tholos.node.vault import KEY_TABLE


@dataclass(frozen=True)
class NodeImage:
    """One node's opened backup, held in memory until it is written."""

    node_id: int
    secrets: dict[str, Any]
    files: dict[str, bytes]
    identity: Any  # the node's age identity (for the cluster part)

    def __repr__(self) -> str:
        return f"NodeImage(node={self.node_id}, <secret>)"


def _open_node(bset: BackupSet, node_id: int, shares: list[OfficerShare]) -> NodeImage:
    m = bset.manifests[node_id]
    identity = combine(shares, bset.cluster_id, node_id, str(m["recipient"]))
    where = f"backup of node {node_id}"
    try:
        plain = pyrage.decrypt(bset.payload(node_id).read_bytes(), [identity])
    except pyrage.DecryptError:
        raise BackupError(f"{where}: the payload does not decrypt under its recovery key") from None
    secrets_json, files = archive.unpack(plain, where)
    body = json.loads(secrets_json)
    if int(body.get("node_id", -1)) != node_id:
        raise BackupError(f"{where}: the payload is node {body.get('node_id')}'s")
    epochs = {
        k["key_id"]: int(json.loads(k["public"]).get("meta", {}).get("epoch", 0))
        for k in body["keys"]
    }
    if epochs != m["key_epochs"]:
        raise BackupError(f"{where}: the payload's keys do not match its signed manifest")
    return NodeImage(node_id, body, files, identity)


def _surviving_epochs(target: Path, node_ids: list[int], skip: set[int]) -> dict[str, int]:
    """Highest refresh epoch of every key on the target's other nodes (public column only)."""
    best: dict[str, int] = {}
    for i in node_ids:
        db = target / f"node-{i}" / "node.db"
        if i in skip or not db.exists():
            continue
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            for key_id, public in con.execute("SELECT key_id, public FROM keys"):
                e = int(json.loads(public).get("meta", {}).get("epoch", 0))
                best[str(key_id)] = max(best.get(str(key_id), 0), e)
        except sqlite3.DatabaseError:
            continue
        finally:
            con.close()
    return best


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_node(target: Path, image: NodeImage) -> dict[str, Any]:
    final = target / f"node-{image.node_id}"
    work = target / f"node-{image.node_id}.restoring"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    work.chmod(0o700)
    for rel, data in image.files.items():
        _write_private(work / rel, data)
    s = image.secrets
    cfg_path = work / "node.json"
    cfg = json.loads(cfg_path.read_text())
    # Development layout (cluster/layout.py): the passphrase lives outside the node's directory.
    secrets_dir = target / "secrets"
    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    cfg["passphrase_file"] = f"../secrets/node-{image.node_id}.passphrase"
    cfg.pop("key_file", None)
    cfg_path.write_text(json.dumps(cfg, indent=2))
    passphrase = secrets.token_urlsafe(24).encode()
    _write_private(secrets_dir / f"node-{image.node_id}.passphrase", passphrase)
    unsealer = Unsealer(passphrase=passphrase)
    seal_file(unsealer, work / s["identity_file"], s["identity"].encode(), "identity")
    seal_file(unsealer, work / s["tls_key_file"], s["tls_key"].encode(), "tls-key")
    store = NodeStore(work / str(cfg.get("db", "node.db")))
    try:
        record, master = create_master(unsealer)
        barrier = Barrier(master)
        store.put_meta("master", record)
        for k, v in s["meta"].items():
            store.put_meta(k, v)
        store.put_keys(
            [
                (
                    k["key_id"],
                    k["scheme"],
                    k["public"],
                    barrier.seal(KEY_TABLE, k["key_id"], bytes.fromhex(k["secret"])),
                )
                for k in s["keys"]
            ]
        )
    finally:
        store.close()
    os.replace(work, final)
    return {"dir": str(final), "keys": len(s["keys"])}


def _write_cluster(target: Path, bset: BackupSet, image: NodeImage) -> bool:
    """The cluster part, only into a target without a cluster.json (a fresh site)."""
    if (target / "cluster.json").exists():
        return False
    try:
        plain = pyrage.decrypt((bset.root / manifest.CLUSTER_FILE).read_bytes(), [image.identity])
    except pyrage.DecryptError:
        raise BackupError("the cluster part does not decrypt under the recovery keys") from None
    _, files = archive.unpack(plain, "cluster part")
    for rel, data in files.items():
        _write_private(target / rel, data)
    return True


def restore(
    root: Path, share_files: list[Path], target: Path, only: set[int] | None = None
) -> dict[str, Any]:
    """Restore into cluster directory `target` every node of the set at `root` that has officer
    shares among `share_files` (and is in `only`, if given)."""
    bset = verify_set(root)
    shares: dict[int, list[OfficerShare]] = {}
    for f in share_files:
        s = OfficerShare.load(f)
        if s.cluster_id != bset.cluster_id:
            raise BackupError(f"officer share {f} is for cluster {s.cluster_id}, not this set's")
        if s.node_id not in bset.manifests:
            raise BackupError(f"officer share {f} is for node {s.node_id}, not in this set")
        shares.setdefault(s.node_id, []).append(s)
    wanted = sorted(i for i in shares if only is None or i in only)
    if not wanted:
        raise BackupError("no officer share for any node to restore: nothing restored")
    if target.exists() and (target / "cluster.json").exists():
        here = json.loads((target / "cluster.json").read_text())
        if manifest.roster_digest(here["roster"]) != manifest.roster_digest(bset.cluster["roster"]):
            raise BackupError(f"{target} holds another cluster than this backup set")
    for i in wanted:
        d = target / f"node-{i}"
        if d.exists() and any(d.iterdir()):
            raise BackupError(
                f"{d} is not empty: restore writes only missing nodes (move it away first)"
            )
    images = [_open_node(bset, i, shares[i]) for i in wanted]
    current = _surviving_epochs(target, list(bset.manifests), set(wanted))
    for img in images:
        mine = bset.manifests[img.node_id]["key_epochs"]
        older = sorted(k for k, e in mine.items() if e < current.get(k, e))
        if older:
            raise BackupError(
                f"backup of node {img.node_id} is stale: key(s) {', '.join(older)} are at an older "
                "refresh epoch than the cluster's other nodes hold; restore a newer backup (or "
                "run `tholos keys repair --all --node N` on a fresh node)"
            )
    target.mkdir(parents=True, exist_ok=True)
    wrote_cluster = _write_cluster(target, bset, images[0])
    restored = {str(img.node_id): _write_node(target, img) for img in images}
    missing = sorted(
        set(current) - {k for img in images for k in bset.manifests[img.node_id]["key_epochs"]}
    )
    return {
        "dir": str(target),
        "set_id": bset.manifests[images[0].node_id]["set_id"],
        "restored": restored,
        "not_restored": [str(i) for i in sorted(bset.manifests) if i not in wanted],
        "cluster_files_written": wrote_cluster,
        "keys_newer_than_backup": missing,
    }
