"""`tholos backup create --to DIR`: one encrypted, signed backup per node, its nodes running or
stopped: every database is read as one consistent snapshot (SQLite's online backup API).

The CLI opens each node's store as the node process does (its passphrase or key file), opens every
key share through the node's barrier, and writes it only inside the age payload encrypted to the
node's recovery recipient. Layout of DIR:
    cluster.json              the cluster's public description (roster: who signs the manifests)
    cluster.tar.age           CA, client, gateway files; encrypted to every node's recipient
    node-N/manifest.json      signed by node N's identity key: ids, time, epochs, file digests
    node-N/payload.tar.age    secrets.json (shares, identity and TLS keys, meta) + node files
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import pyrage
from pyrage import x25519

from tholos.backup import archive, manifest
from tholos.backup.errors import BackupError
from tholos.backup.recovery import read_recipient
from tholos.node.barrier import Barrier, WrongPassphrase, open_master
from tholos.node.config import NodeConfig
from tholos.node.server import (
    EXIT_WRONG_PASSPHRASE,
    StartupError,
    load_identity,
    make_unsealer,
    open_secret,
    unseal,
)
from tholos.node.store import NodeStore
from tholos.node.vault import KEY_TABLE

#: Node files never copied as such: the database (its contents go into secrets.json), the
#: passphrase (a restored node gets a new one), and the sealed secrets (opened into secrets.json).
NODE_SKIP = {"node.db", "passphrase"}
#: Cluster-level files kept out of the cluster part: per-node dirs, officer shares (never in a
#: backup), process state, user key files (the users', not the cluster's).
# Never in a backup: officer shares, run state, demo user keys, and the development passphrases
# (a restored node gets a new passphrase; secrets/ of the old cluster would only widen exposure).
# Earlier backup sets (D/backups: the genesis ceremony's first) are never inside a later one.
CLUSTER_SKIP = {"recovery", "run", "users", "secrets", "backups"}


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _audit_head(node_dir: Path) -> dict[str, Any]:
    path = node_dir / "audit.db"
    if not path.exists():
        return {"seq": 0, "hash": ""}
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    finally:
        db.close()
    return {"seq": 0, "hash": ""} if row is None else {"seq": int(row[0]), "hash": str(row[1])}


def _snapshot(cfg: NodeConfig) -> sqlite3.Connection:
    """The node's database as one consistent snapshot (SQLite's online backup API), in memory:
    the node may be running and writing; every row read below is from the same instant."""
    src = sqlite3.connect(f"file:{cfg.db}?mode=ro", uri=True, timeout=30.0)
    snap = sqlite3.connect(":memory:")
    try:
        src.backup(snap)
    finally:
        src.close()
    return snap


def _next_sequence(cfg: NodeConfig, seen: int) -> int:
    """Record the backup's sequence number in the node's live database (a short write, which
    waits for a running node's transaction to end)."""
    live = sqlite3.connect(str(cfg.db), timeout=30.0, isolation_level=None)
    try:
        live.execute("PRAGMA busy_timeout = 30000")
        sequence = seen + 1
        live.execute(
            "INSERT OR REPLACE INTO meta (k, v) VALUES ('backup_seq', ?)", (str(sequence),)
        )
        return sequence
    finally:
        live.close()


def node_payload(cfg: NodeConfig, node_dir: Path) -> tuple[bytes, dict[str, Any], bytes]:
    """(payload tar, manifest fields about the content, identity secret) for one node, running
    or stopped (its databases are read as consistent snapshots)."""
    store = NodeStore(cfg.db)
    try:
        if store.get_meta("master") is None:  # a node that never ran: its master key now
            unseal(cfg, store)
    finally:
        store.close()
    snap = _snapshot(cfg)
    try:
        (record,) = snap.execute("SELECT v FROM meta WHERE k = 'master'").fetchone()
        try:
            barrier = Barrier(open_master(make_unsealer(cfg), str(record)))
        except WrongPassphrase as exc:
            raise StartupError(str(exc), EXIT_WRONG_PASSPHRASE) from None
        identity = load_identity(cfg)
        tls_key = open_secret(cfg, cfg.tls.key, "tls-key")
        keys = []
        epochs: dict[str, int] = {}
        for key_id, scheme, public, sealed in snap.execute(
            "SELECT key_id, scheme, public, sealed FROM keys ORDER BY key_id"
        ):
            secret = barrier.open(KEY_TABLE, str(key_id), bytes(sealed))
            keys.append(
                {"key_id": key_id, "scheme": scheme, "public": public, "secret": secret.hex()}
            )
            epochs[str(key_id)] = int(json.loads(public).get("meta", {}).get("epoch", 0))
        meta = {
            str(k): str(v) for k, v in snap.execute("SELECT k, v FROM meta WHERE k != 'master'")
        }
    finally:
        snap.close()
    sequence = _next_sequence(cfg, int(meta.get("backup_seq", "0")))
    meta["backup_seq"] = str(sequence)
    skip = set(NODE_SKIP)
    for p in (cfg.identity_file, cfg.tls.key):
        if p.parent == node_dir:
            skip.add(p.name)
    body = {
        "node_id": cfg.node_id,
        "keys": keys,
        "meta": meta,
        "identity": identity.secret.hex(),
        "identity_file": cfg.identity_file.name,
        "tls_key": tls_key.decode(),
        "tls_key_file": cfg.tls.key.name,
    }
    files = archive.collect(node_dir, skip)
    info = {"sequence": sequence, "key_epochs": epochs, "keys": len(keys)}
    return archive.pack(json.dumps(body).encode(), files), info, identity.secret


class _ClusterFiles:
    """The parts of a cluster directory (tholos.cluster.directory) a backup reads. Kept here so
    that backup sits below cluster in the layers (cluster init writes the recovery files)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def load(self) -> dict[str, Any]:
        path = self.root / "cluster.json"
        if not path.exists():
            raise BackupError(f"no cluster at {self.root}")
        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded

    def node_dir(self, i: int) -> Path:
        return self.root / f"node-{i}"

    def node_config(self, i: int) -> Path:
        return self.node_dir(i) / "node.json"


def create_backup(cluster_root: Path, out: Path) -> dict[str, Any]:
    """Back up every node of the cluster at `cluster_root` into `out` (which must be new or
    empty). The nodes may be running (online backup: consistent database snapshots)."""
    cd = _ClusterFiles(cluster_root)
    m = cd.load()
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty: give a new directory for the backup")
    node_ids = [int(r["node_id"]) for r in m["roster"]]
    outside = sorted(int(i) for i in m.get("external_nodes", []))
    if outside:
        raise BackupError(
            f"node(s) {', '.join(map(str, outside))} run on their own machines: a backup set "
            "needs every node's directory here (backups of external nodes are not supported yet)"
        )
    cid = manifest.cluster_id(m)
    recipients = {}
    for i in node_ids:
        rec = read_recipient(cd.node_dir(i))
        if rec["cluster_id"] != cid or int(rec["node_id"]) != i:
            raise BackupError(f"node-{i}/recovery.json belongs to another node or cluster")
        recipients[i] = rec
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    set_id = secrets.token_hex(16)
    created_at = int(time.time())
    (out / "cluster.json").write_text(json.dumps(m, indent=2))
    cluster_files = archive.collect(cd.root, CLUSTER_SKIP | {f"node-{i}" for i in node_ids})
    to_all = [x25519.Recipient.from_str(r["recipient"]) for r in recipients.values()]
    _write(
        out / manifest.CLUSTER_FILE,
        pyrage.encrypt(archive.pack(b"{}", cluster_files), to_all),
    )
    cluster_entry = manifest.file_entry(out / manifest.CLUSTER_FILE)
    report: dict[str, Any] = {"dir": str(out), "set_id": set_id, "nodes": {}}
    for i in node_ids:
        cfg = NodeConfig.load(cd.node_config(i))
        try:
            payload, info, identity_secret = node_payload(cfg, cd.node_dir(i))
        except StartupError as exc:
            raise BackupError(f"node {i}: cannot open its store: {exc}") from None
        d = out / f"node-{i}"
        d.mkdir(exist_ok=True)
        recipient = recipients[i]
        _write(
            d / manifest.PAYLOAD_FILE,
            pyrage.encrypt(payload, [x25519.Recipient.from_str(recipient["recipient"])]),
        )
        body = {
            "format": manifest.MANIFEST_FORMAT,
            "cluster_id": cid,
            "roster_digest": manifest.roster_digest(m["roster"]),
            "node_id": i,
            "set_id": set_id,
            "created_at": created_at,
            "recipient": recipient["recipient"],
            "recovery_threshold": int(recipient["threshold"]),
            "audit_head": _audit_head(cd.node_dir(i)),
            **info,
            "files": {
                manifest.PAYLOAD_FILE: manifest.file_entry(d / manifest.PAYLOAD_FILE),
                manifest.CLUSTER_FILE: cluster_entry,
            },
        }
        signed = manifest.sign(body, identity_secret[:32])
        _write(d / manifest.MANIFEST_FILE, json.dumps(signed, indent=2).encode())
        report["nodes"][str(i)] = {"keys": info["keys"], "sequence": info["sequence"]}
    return report
