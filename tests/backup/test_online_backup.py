"""A backup made while a node keeps writing to its database (online backup): the set holds one
consistent snapshot per node (the keys written before some instant, none after, no gap), its
restore drill passes, and the writer is never refused."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.node.signer_setup import in_process
from tholos.backup.create import create_backup
from tholos.backup.drill import drill
from tholos.backup.verify import verify_set
from tholos.cluster.layout import ClusterDir, init_cluster
from tholos.crypto.groups.ed25519 import ED25519
from tholos.crypto.key_import import import_key
from tholos.node.config import NodeConfig
from tholos.node.server import build_service
from tholos.schemes import SCHEMES

N, T = 3, 2


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lower scrypt cost for the many seals here (stored in each record; the default stays)."""
    from tholos.node import barrier

    monkeypatch.setattr(barrier, "SCRYPT_N", 2**10)


def test_backup_while_a_node_writes(tmp_path: Path) -> None:
    root = tmp_path / "c"
    init_cluster(root, N, T, recovery_officers=2, recovery_threshold=2)
    cd = ClusterDir(root)
    ids = list(range(1, N + 1))
    services = {i: build_service(in_process(NodeConfig.load(cd.node_config(i)))) for i in ids}
    written: list[str] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:  # node 1 keeps receiving new key shares, one transaction each
        try:
            while not stop.is_set():
                key = import_key(ED25519, os.urandom(32), T, ids)
                key_id = f"w{len(written):04d}"
                services[1].vault.store_shares([(key_id, SCHEMES["ed25519"], key.shares[1], {})])
                written.append(key_id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        thread = threading.Thread(target=writer)
        thread.start()
        while len(written) < 3 and thread.is_alive():
            stop.wait(0.01)
        before = len(written)
        out = tmp_path / "b"
        create_backup(root, out)
        after = len(written)
        while len(written) < after + 3 and thread.is_alive():
            stop.wait(0.01)
        stop.set()
        thread.join(timeout=60)
    finally:
        stop.set()
        for svc in services.values():
            svc.store.close()
    assert not errors, errors
    saved = verify_set(out).manifests[1]["key_epochs"]
    # one instant of node 1's database: every key written before it, none after, no gap
    assert before <= len(saved) <= after
    assert sorted(saved) == written[: len(saved)]
    assert len(written) > len(saved)
    shares = sorted((root / "recovery").glob("node-*/officer-*.json"))
    report = drill(out, shares)
    assert report["nodes"]["1"] == {"keys": len(saved)}
    assert report["nodes"]["2"] == {"keys": 0}
