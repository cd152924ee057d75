"""Node identity secrets (E2E identity key, TLS key) sealed under the passphrase or key file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tholos.node.barrier import (
    SealError,
    Unsealer,
    WrongPassphrase,
    is_sealed_file,
    open_file,
    seal_file,
)
from tholos.node.config import NodeConfig
from tholos.node.server import StartupError, load_identity, open_secret


def test_seal_file_round_trip_and_refusals(tmp_path: Path) -> None:
    f = tmp_path / "identity.key"
    u = Unsealer(passphrase=b"pw")
    seal_file(u, f, b"topsecret", "identity")
    assert is_sealed_file(f) and b"topsecret" not in f.read_bytes()
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert open_file(u, f, "identity") == b"topsecret"
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        open_file(Unsealer(passphrase=b"other"), f, "identity")
    with pytest.raises(SealError):
        open_file(u, f, "tls-key")  # a sealed file used as another secret
    d = json.loads(f.read_text())
    d["label"] = "tls-key"  # relabelled: the associated data no longer matches
    f.write_text(json.dumps(d))
    with pytest.raises(WrongPassphrase):
        open_file(u, f, "tls-key")
    kf = tmp_path / "k"
    kf.write_text(os.urandom(32).hex())
    g = tmp_path / "tls.key"
    seal_file(Unsealer(key_file=kf), g, b"pem", "tls-key")
    assert open_file(Unsealer(key_file=kf), g, "tls-key") == b"pem"


def test_node_seals_plaintext_identity_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tholos.cluster.layout import ClusterDir, init_cluster

    init_cluster(tmp_path / "c", 4, 2)
    cfg = NodeConfig.load(ClusterDir(tmp_path / "c").node_config(1))
    plain = cfg.identity_file.read_bytes()
    monkeypatch.delenv("THOLOS_PASSPHRASE", raising=False)
    ident = load_identity(cfg)  # migrates, then serves from memory
    assert is_sealed_file(cfg.identity_file) and plain not in cfg.identity_file.read_bytes()
    assert load_identity(cfg).public == ident.public  # reopened from the sealed file
    assert open_secret(cfg, cfg.tls.key, "tls-key").startswith(b"-----BEGIN")
    assert is_sealed_file(cfg.tls.key)
    monkeypatch.setenv("THOLOS_PASSPHRASE", "wrong")
    with pytest.raises(StartupError, match="wrong passphrase") as ei:
        load_identity(cfg)
    assert ei.value.code == 3
