"""The genesis ceremony makes the first backup and restores it on throw-away nodes before it
reports success (cluster/genesis_backup.py, backup/drill.py); a backup that fails its drill makes
the ceremony fail, and the drill's own checks (every node restored, keys and public packages as
the cluster holds them, shares that open) refuse a set that does not match."""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.node.signer_setup import in_process
from tholos.backup import create as backup_create
from tholos.backup.create import create_backup
from tholos.backup.drill import drill
from tholos.backup.errors import BackupError
from tholos.backup.verify import verify_set
from tholos.cli import main
from tholos.cluster import genesis_backup
from tholos.cluster.directory import ClusterDir, ClusterError
from tholos.cluster.governance_init import finalize_genesis, sign_genesis
from tholos.cluster.layout import init_cluster
from tholos.crypto.groups.ed25519 import ED25519
from tholos.crypto.key_import import import_key
from tholos.governance import public_key_hex
from tholos.node.config import NodeConfig
from tholos.node.server import build_service
from tholos.schemes import SCHEMES

N, T = 3, 2


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lower scrypt cost for the many seals of these tests (it is stored in each record, so
    every open uses the cost it was sealed with; the node's default is unchanged)."""
    from tholos.node import barrier

    monkeypatch.setattr(barrier, "SCRYPT_N", 2**10)


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the drill's throw-away nodes go (the system temp dir, redirected to watch it)."""
    d = tmp_path / "scratch"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def shares(root: Path, officers: tuple[int, ...] = (1, 2, 3)) -> list[Path]:
    return [
        root / "recovery" / f"node-{i}" / f"officer-{j}.json"
        for i in range(1, N + 1)
        for j in officers
    ]


def test_governed_init_makes_and_drills_the_first_backup(tmp_path: Path, scratch: Path) -> None:
    root = tmp_path / "c"
    m = init_cluster(root, N, T, governance=True, recovery_officers=3, recovery_threshold=2)
    report = m["genesis_backup"]
    assert report["made"] is True and report["drill"] == {str(i): {"keys": 0} for i in (1, 2, 3)}
    assert verify_set(root / "backups" / "genesis").summary()["set_id"] == report["set_id"]
    assert ClusterDir(root).load()["genesis_backup"]["set_id"] == report["set_id"]
    assert list(scratch.iterdir()) == []  # the throw-away nodes are gone
    # a later backup does not carry the earlier set inside its cluster part
    assert "backups" in backup_create.CLUSTER_SKIP


def test_a_corrupted_first_backup_fails_the_ceremony(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    def corrupting(root: Path, out: Path) -> dict[str, Any]:
        made = create_backup(root, out)
        payload = out / "node-2" / "payload.tar.age"
        data = bytearray(payload.read_bytes())
        data[len(data) // 2] ^= 0x01
        payload.write_bytes(bytes(data))
        return made

    monkeypatch.setattr(genesis_backup, "create_backup", corrupting)
    root = tmp_path / "c"
    with pytest.raises(ClusterError, match=r"genesis ceremony failed.*node 2"):
        init_cluster(root, N, T, governance=True, recovery_officers=2, recovery_threshold=2)
    assert not (root / "backups" / "genesis").exists()
    assert "genesis_backup" not in ClusterDir(root).load()
    assert list(scratch.iterdir()) == []
    # the CLI reports the failure with a non-zero status
    code = main(
        [
            "cluster", "init", "--dir", str(tmp_path / "d"), "--nodes", "3", "--threshold", "2",
            "--governance", "--recovery-officers", "2", "--recovery-threshold", "2", "--json",
        ]
    )  # fmt: skip
    err = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["error"]
    assert code == 1 and "restore drill" in err["message"], err


def test_finalize_runs_the_drill(tmp_path: Path, scratch: Path) -> None:
    keys = {f"admin-{i}": Ed25519PrivateKey.generate() for i in (1, 2)}
    root = tmp_path / "c"
    init_cluster(
        root,
        N,
        T,
        governance=True,
        admins={k: public_key_hex(v) for k, v in keys.items()},
        admin_quorum=2,
        recovery_officers=3,
        recovery_threshold=2,
    )
    assert not (root / "backups").exists()  # the genesis is not finalized yet
    for key in keys.values():
        sign_genesis(root / "genesis.proposal.json", key)
    out = finalize_genesis(root)
    assert out["governance"] == "governed" and out["backup"]["made"] is True
    assert sorted(out["backup"]["drill"]) == ["1", "2", "3"]
    assert list(scratch.iterdir()) == []


@pytest.fixture
def keyed(tmp_path: Path) -> Path:
    """An ungoverned cluster whose nodes hold shares of two imported Ed25519 keys."""
    root = tmp_path / "k"
    init_cluster(root, N, T, recovery_officers=3, recovery_threshold=2)
    ids = list(range(1, N + 1))
    imported = [import_key(ED25519, os.urandom(32), T, ids) for _ in range(2)]
    for i in ids:
        svc = build_service(in_process(NodeConfig.load(ClusterDir(root).node_config(i))))
        try:
            svc.vault.store_shares(
                [(f"k{j}", SCHEMES["ed25519"], k.shares[i], {}) for j, k in enumerate(imported)]
            )
        finally:
            svc.store.close()
    return root


def test_drill_of_a_set_with_keys_and_its_refusals(
    keyed: Path, tmp_path: Path, scratch: Path
) -> None:
    out = tmp_path / "b"
    create_backup(keyed, out)
    ok = drill(out, shares(keyed), source=keyed)
    assert ok["ok"] and ok["nodes"] == {str(i): {"keys": 2} for i in (1, 2, 3)}
    # two officers per node are enough (K = 2)
    assert drill(out, shares(keyed, (2, 3)), source=keyed)["ok"]
    # a node without officer shares: the drill restores every node or fails
    some = [s for s in shares(keyed) if "node-3" not in str(s)]
    with pytest.raises(BackupError, match=r"no officer shares for node\(s\) 3"):
        drill(out, some, source=keyed)
    # an officer share of another node put in node 1's place
    swapped = shares(keyed, (1, 2))
    wrong = tmp_path / "wrong.json"
    body = json.loads(swapped[0].read_text())
    body["share"] = json.loads(swapped[2].read_text())["share"]
    wrong.write_text(json.dumps(body))
    with pytest.raises(BackupError):
        drill(out, [wrong, *swapped[1:]], source=keyed)
    # the cluster holds a key the set does not: the set is not a backup of it
    db = sqlite3.connect(str(keyed / "node-1" / "node.db"))
    cols = [r[1] for r in db.execute("PRAGMA table_info(keys)")]
    picked = ", ".join("'k9'" if c == "key_id" else c for c in cols)
    with db:
        db.execute(
            f"INSERT INTO keys ({', '.join(cols)}) SELECT {picked} FROM keys WHERE key_id = 'k0'"
        )
    db.close()
    with pytest.raises(BackupError, match=r"restored node 1: key\(s\) k9 .* not in the backup"):
        drill(out, shares(keyed), source=keyed)
    assert list(scratch.iterdir()) == []
