"""A node directory a signer can start on: config, database with a master key (key file) and
one stored secp256k1 share of a 2-of-3 DKG key, owned by `uid` when given."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from tholos.crypto.dkg import run_dkg
from tholos.crypto.groups import SECP256K1
from tholos.node.barrier import Barrier, Unsealer, create_master
from tholos.node.config import NodeConfig
from tholos.node.store import NodeStore
from tholos.node.vault import KeyVault
from tholos.schemes import SCHEMES

KEY_ID = "k1"


def make_node_dir(root: Path, uid: int | None = None) -> tuple[Path, dict[int, Any]]:
    """(config path, the DKG's shares by node id); node 1's share is stored."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    key_file = root / "master.key"
    key_file.write_text(os.urandom(32).hex())
    key_file.chmod(0o600)
    store = NodeStore(root / "node.db")
    record, master = create_master(Unsealer(key_file=key_file))
    store.put_meta("master", record)
    shares = run_dkg(SECP256K1, 2, [1, 2, 3])
    KeyVault(store, Barrier(master), 1).store_shares(
        [(KEY_ID, SCHEMES["secp256k1"], shares[1], {})]
    )
    store.close()
    cfg = root / "node.json"
    cfg.write_text(
        json.dumps(
            {
                "node_id": 1,
                "listen": "127.0.0.1:0",
                "db": "node.db",
                "tls": {"ca": "ca.pem", "cert": "node.pem", "key": "node.key"},
                "identity_file": "identity.key",
                "key_file": "master.key",
                "roster": [],
            }
        )
    )
    cfg.chmod(0o600)
    if uid is not None:
        for p in [root, *root.iterdir()]:
            os.chown(p, uid, uid)
    return cfg, shares


def in_process(cfg: NodeConfig) -> NodeConfig:
    """`cfg` for a node service built inside the test process: no signer subprocess (the shares
    are opened here, as a node with `signer` off does)."""
    return dataclasses.replace(cfg, signer=False)
