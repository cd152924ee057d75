"""bench/scale.py seeds keys the way a node and the gateway read them (no processes started)."""

from __future__ import annotations

from pathlib import Path

from tholos.bench import scale
from tholos.cluster.directory import ClusterDir
from tholos.cluster.layout import init_cluster
from tholos.gateway.config import GatewayConfig
from tholos.gateway.store import GatewayStore
from tholos.node.config import NodeConfig
from tholos.node.server import unseal
from tholos.node.store import NodeStore
from tholos.node.vault import KeyVault


def test_seeded_keys_open_on_every_node_and_match_the_gateway(tmp_path: Path) -> None:
    init_cluster(tmp_path, 3, 2)
    ids = scale.seed_keys(tmp_path, "bip340", 3)
    assert len(set(ids)) == 3
    cd = ClusterDir(tmp_path)
    gw = GatewayStore(GatewayConfig.load(cd.gateway_config).db)
    try:
        rows = {k: gw.get_key(k) for k in ids}
    finally:
        gw.close()
    for i in (1, 2, 3):
        cfg = NodeConfig.load(cd.node_config(i))
        store = NodeStore(cfg.db)
        try:
            vault = KeyVault(store, unseal(cfg, store), i)
            assert vault.scan() == set() and vault.unchecked == 0
            for key_id, row in rows.items():
                assert row is not None
                share = vault.record(key_id).share
                assert share.identifier == i
                assert share.public.to_dict() == row.package
        finally:
            store.close()


def test_derived_addresses_are_counted_up_to_the_last_index() -> None:
    from tholos.crypto.groups.secp256k1 import SECP256K1

    point = SECP256K1.serialize_element(SECP256K1.base_mul(12345))
    got = scale.derive_addresses(3, point, b"\x01" * 32)
    assert got["addresses"] == 3 and got["last"]["index"] == 2
    assert got["last"]["address"].startswith("bc1p")


def test_a_nodes_signer_is_found_among_its_children() -> None:
    """The CPU and memory of a node count its signer process: found as a child in /proc."""
    import os
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert child.pid in scale.child_pids(os.getpid())
        assert scale.child_pids(child.pid) == []
        got = scale.cpu_sample({"node-1": [os.getpid(), child.pid]})
        assert got["node-1"] > 0 and set(got) == {"node-1", "client"}
        assert scale.rss_kib(child.pid) > 0
    finally:
        child.kill()
        child.wait()
