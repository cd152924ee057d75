"""Disable, enable and destroy in a governed cluster through the CLI, on real processes (mutual
TLS): refused without the admin quorum's key change, applied by every node with it, durable
across a restart, audited, and a replayed document refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cluster.test_governance import GovCluster, _cli, gov_cluster  # noqa: F401
from tholos.node.config import NodeConfig

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_key_changes_need_the_admin_quorum(
    gov_cluster: Callable[..., GovCluster],  # noqa: F811
    tmp_path: Path,
) -> None:
    c = gov_cluster()
    c.start()
    d = ("--dir", str(c.cd.root))
    kid = c.create_key("bip340")["key_id"]
    code, err = _cli("keys", "destroy", kid, "--confirm", kid, *d)
    assert code != 0 and err["error"]["code"] == "destroy_refused", err
    doc = tmp_path / "destroy.json"
    _, out = _cli(
        "keys", "change", kid, "--action", "destroy", "--out", str(doc), "--as", "admin-1", *d
    )
    assert out["signers"] == ["admin-1"] and out["action"] == "destroy", out
    code, err = _cli("keys", "destroy", kid, "--confirm", kid, "--document", str(doc), *d)
    assert code != 0 and "QuorumNotMet" in err["error"]["message"], err  # one admin is not enough
    _, out = _cli("keys", "sign-change", str(doc), "--as", "admin-2", *d)
    assert out["signers"] == ["admin-1", "admin-2"]
    code, out = _cli("keys", "destroy", kid, "--confirm", kid, "--document", str(doc), *d)
    assert code == 0 and out["nodes"] == {"1": True, "2": True, "3": True, "4": True}, out
    c.stop_all()
    for i in range(1, 5):
        db = NodeConfig.load(c.cd.node_config(i)).db
        files = [p for p in db.parent.glob(db.name + "*") if p.is_file()]
        assert not any(kid.encode() in p.read_bytes() for p in files), i  # share and state gone
        audit = b"".join(p.read_bytes() for p in db.parent.glob("audit.db*") if p.is_file())
        assert b"key_destroy" in audit and b"admin-2" in audit, i
    c.start()  # restarted from their files: the key stays gone, the nonces stay spent
    code, err = _cli("keys", "show", kid, *d)
    assert code != 0 and err["error"]["code"] == "unknown_key"
    other = c.create_key("ed25519")["key_id"]
    off, on = tmp_path / "off.json", tmp_path / "on.json"
    for path, action in ((off, "disable"), (on, "enable")):
        _cli("keys", "change", other, "--action", action, "--out", str(path), "--as", "admin-1", *d)
        _cli("keys", "sign-change", str(path), "--as", "admin-3", *d)
    assert _cli("keys", "disable", other, "--document", str(off), *d)[1]["disabled"] is True
    assert _cli("keys", "enable", other, "--document", str(on), *d)[1]["disabled"] is False
    code, err = _cli("keys", "disable", other, "--document", str(off), *d)
    assert code != 0 and err["error"]["code"] == "key_change_replayed", err
    code, err = _cli("keys", "disable", other, "--document", str(on), *d)
    assert code != 0 and err["error"]["code"] == "key_change_mismatch", err
    _, shown = _cli("keys", "show", other, *d)
    assert shown["disabled"] is False
