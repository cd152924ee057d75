"""Backup sets made offline from a cluster directory (no processes): a restore gives every node
back its exact shares under a new master key; tampered, truncated, swapped, mixed, stale or
under-shared restores are refused before anything is written."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pyrage
import pytest

from tests.node.signer_setup import in_process
from tholos.backup.create import create_backup
from tholos.backup.errors import BackupError
from tholos.backup.recovery import OfficerShare, combine
from tholos.backup.restore import restore
from tholos.backup.verify import verify_set
from tholos.cluster.layout import ClusterDir, init_cluster
from tholos.crypto.groups.ed25519 import ED25519
from tholos.crypto.key_import import import_key
from tholos.node.config import NodeConfig
from tholos.node.server import build_service
from tholos.schemes import SCHEMES

N, T = 3, 2


def _shares(root: Path, node: int, officers: tuple[int, ...] = (1, 3)) -> list[Path]:
    return [root / "recovery" / f"node-{node}" / f"officer-{i}.json" for i in officers]


def _node_secrets(root: Path, node: int) -> dict[str, dict[str, object]]:
    """key id -> exported share, read through the node's own start-up path (its passphrase)."""
    svc = build_service(in_process(NodeConfig.load(ClusterDir(root).node_config(node))))
    try:
        ids = [r[0] for r in svc.store.db.execute("SELECT key_id FROM keys ORDER BY key_id")]
        return {k: svc.vault.record(k).share.export_secret() for k in ids}
    finally:
        svc.store.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Path:
    root = tmp_path / "c"
    init_cluster(root, N, T, recovery_officers=3, recovery_threshold=2)
    ids = list(range(1, N + 1))
    keys = [import_key(ED25519, os.urandom(32), T, ids) for _ in range(3)]
    for i in ids:
        svc = build_service(in_process(NodeConfig.load(ClusterDir(root).node_config(i))))
        try:
            svc.vault.store_shares(
                [(f"k{j}", SCHEMES["ed25519"], key.shares[i], {}) for j, key in enumerate(keys)]
            )
        finally:
            svc.store.close()
    return root


@pytest.fixture
def backup(cluster: Path, tmp_path: Path) -> Path:
    out = tmp_path / "b"
    create_backup(cluster, out)
    return out


def test_restore_every_node_elsewhere_gives_back_the_same_shares(
    cluster: Path, backup: Path, tmp_path: Path
) -> None:
    before = {i: _node_secrets(cluster, i) for i in range(1, N + 1)}
    assert all(len(b) == 3 for b in before.values())
    summary = verify_set(backup).summary()
    assert summary["nodes"]["1"]["keys"] == 3
    # Nothing in the set is in clear: no share, no identity key.
    blob = b"".join(p.read_bytes() for p in backup.rglob("*") if p.is_file())
    for node in before.values():
        for s in node.values():
            share_hex = str(s["secret_share"])
            assert share_hex.encode() not in blob and bytes.fromhex(share_hex) not in blob
    dr = tmp_path / "dr"
    shares = [f for i in range(1, N + 1) for f in _shares(cluster, i)]
    res = restore(backup, shares, dr)
    assert sorted(res["restored"]) == ["1", "2", "3"] and res["cluster_files_written"]
    for i in range(1, N + 1):
        assert (dr / "secrets" / f"node-{i}.passphrase").read_bytes() != (
            cluster / "secrets" / f"node-{i}.passphrase"
        ).read_bytes()
        assert not (dr / f"node-{i}" / "passphrase").exists()
        assert _node_secrets(dr, i) == before[i]
    assert (
        json.loads((dr / "cluster.json").read_text())["roster"]
        == json.loads((cluster / "cluster.json").read_text())["roster"]
    )
    assert (dr / "ca" / "ca.key").exists() and not (dr / "recovery").exists()


def test_an_auditor_opens_the_payload_with_k_officers_and_age(cluster: Path, backup: Path) -> None:
    m = verify_set(backup).manifests[2]
    ident = combine(
        [OfficerShare.load(f) for f in _shares(cluster, 2, (2, 3))],
        m["cluster_id"],
        2,
        m["recipient"],
    )
    plain = pyrage.decrypt((backup / "node-2" / "payload.tar.age").read_bytes(), [ident])
    assert b"secrets.json" in plain and b"files/node.json" in plain


def test_one_wiped_node_is_restored_in_place(cluster: Path, backup: Path) -> None:
    before = _node_secrets(cluster, 2)
    shutil.rmtree(cluster / "node-2")
    res = restore(backup, _shares(cluster, 2) + _shares(cluster, 3), cluster, only={2})
    assert list(res["restored"]) == ["2"] and not res["cluster_files_written"]
    assert _node_secrets(cluster, 2) == before


def _refused(backup: Path, cluster: Path, target: Path, match: str) -> None:
    shares = [f for i in range(1, N + 1) for f in _shares(cluster, i)]
    with pytest.raises(BackupError, match=match):
        restore(backup, shares, target)
    assert not target.exists() or not any(target.iterdir()), "nothing may be written"


def test_tampered_payload(cluster: Path, backup: Path, tmp_path: Path) -> None:
    p = backup / "node-1" / "payload.tar.age"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 1
    p.write_bytes(bytes(data))
    _refused(backup, cluster, tmp_path / "dr", "node 1: payload.tar.age does not match its SHA-256")


def test_truncated_payload(cluster: Path, backup: Path, tmp_path: Path) -> None:
    p = backup / "node-3" / "payload.tar.age"
    p.write_bytes(p.read_bytes()[:-100])
    _refused(backup, cluster, tmp_path / "dr", "node 3: payload.tar.age is .* bytes.*truncated")


def test_tampered_manifest(cluster: Path, backup: Path, tmp_path: Path) -> None:
    p = backup / "node-2" / "manifest.json"
    m = json.loads(p.read_text())
    m["created_at"] += 86400
    p.write_text(json.dumps(m))
    _refused(backup, cluster, tmp_path / "dr", "node 2: manifest signature does not verify")


def test_swapped_backups(cluster: Path, backup: Path, tmp_path: Path) -> None:
    shutil.rmtree(backup / "node-2")
    shutil.copytree(backup / "node-1", backup / "node-2")
    _refused(backup, cluster, tmp_path / "dr", "node 1's backup under node 2's name")
    # Renaming the node id in the manifest breaks its signature instead.
    p = backup / "node-2" / "manifest.json"
    m = json.loads(p.read_text())
    m["node_id"] = 2
    p.write_text(json.dumps(m))
    _refused(backup, cluster, tmp_path / "dr", "node 2: manifest signature does not verify")


def test_missing_files(cluster: Path, backup: Path, tmp_path: Path) -> None:
    (backup / "cluster.tar.age").unlink()
    _refused(backup, cluster, tmp_path / "dr", "cluster.tar.age is missing")
    shutil.rmtree(backup / "node-3")
    _refused(backup, cluster, tmp_path / "dr", "backup of node 3 is missing")


def test_stale_node_backup_mixed_into_a_newer_set(
    cluster: Path, backup: Path, tmp_path: Path
) -> None:
    newer = tmp_path / "b2"
    create_backup(cluster, newer)
    assert verify_set(newer).manifests[2]["sequence"] == 2
    shutil.rmtree(newer / "node-2")
    shutil.copytree(backup / "node-2", newer / "node-2")
    _refused(newer, cluster, tmp_path / "dr", r"mixes backups of different runs: node\(s\) 2")


def test_backup_older_than_the_surviving_nodes_key_epochs(cluster: Path, backup: Path) -> None:
    # Nodes 2 and 3 went through a refresh of k1 after the backup (epoch 1; public column).
    for i in (2, 3):
        db = sqlite3.connect(cluster / f"node-{i}" / "node.db")
        row = db.execute("SELECT public FROM keys WHERE key_id = 'k1'").fetchone()
        public = json.loads(row[0])
        public["meta"]["epoch"] = 1
        with db:
            db.execute("UPDATE keys SET public = ? WHERE key_id = 'k1'", (json.dumps(public),))
        db.close()
    shutil.rmtree(cluster / "node-1")
    with pytest.raises(BackupError, match=r"backup of node 1 is stale: key\(s\) k1"):
        restore(backup, _shares(cluster, 1), cluster)
    assert not (cluster / "node-1").exists()


def test_fewer_than_k_officer_shares_restore_nothing(
    cluster: Path, backup: Path, tmp_path: Path
) -> None:
    dr = tmp_path / "dr"
    with pytest.raises(BackupError, match=r"node 1: 1 distinct officer share.*2 needed"):
        restore(backup, _shares(cluster, 1, (2,)) + _shares(cluster, 2), dr)
    assert not dr.exists()
    with pytest.raises(BackupError, match="no officer share"):
        restore(backup, [], dr)


def test_restore_refuses_a_live_node_directory(cluster: Path, backup: Path) -> None:
    with pytest.raises(BackupError, match="node-1 is not empty"):
        restore(backup, _shares(cluster, 1), cluster)


def test_backup_needs_recovery_keys_and_an_empty_target(tmp_path: Path, backup: Path) -> None:
    root = tmp_path / "plain"
    init_cluster(root, 2, 2)
    with pytest.raises(BackupError, match="no recovery key"):
        create_backup(root, tmp_path / "b3")
    with pytest.raises(BackupError, match="not empty"):
        create_backup(root, backup)
