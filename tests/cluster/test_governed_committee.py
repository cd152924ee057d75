"""Committee changes in a governed cluster through the CLI, on real processes (mutual TLS):
refused without the admins' committee change, refused with one admin signature, applied by every
node with the quorum (threshold 3, then node 5 added), the key signing a governed request after
each step with its public key unchanged (checked by tests/cluster/verify.py), the change in every node's audit
chain, and the first document refused when replayed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cluster.test_committee import cli
from tests.cluster.test_governance import GovCluster, gov_cluster  # noqa: F401
from tests.cluster.verify import verify
from tholos.cluster import procs
from tholos.node.config import NodeConfig

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _signs(c: GovCluster, key_id: str, public: str) -> None:
    req = c.request(key_id, "addr-1", 5)
    res = c.submit(req, "approver-1")
    assert res["status"] == "signed", res
    message = bytes.fromhex(json.loads(req.payload_bytes())["data"])
    assert verify("bip340", message, bytes.fromhex(res["signature"]), bytes.fromhex(public))


def test_governed_committee_change_through_the_cli(
    gov_cluster: Callable[..., GovCluster],  # noqa: F811
    tmp_path: Path,
) -> None:
    c = gov_cluster()
    cli(c, "cluster", "up")  # in a subprocess: the CLI's own pid files, as an operator runs it
    try:
        key = c.create_key("bip340")
        kid, public = key["key_id"], key["public_key"]
        err = cli(c, "cluster", "reshare", "--threshold", "3", ok=False)
        assert "signed by the admin quorum" in err["error"]["message"], err

        up = tmp_path / "t3.json"
        out = cli(
            c, "cluster", "committee-change", "--members", "1,2,3,4", "--threshold", "3",
            "--out", str(up), "--as", "admin-1",
        )  # fmt: skip
        assert out["signers"] == ["admin-1"], out
        err = cli(c, "cluster", "reshare", "--threshold", "3", "--document", str(up), ok=False)
        assert "QuorumNotMet" in err["error"]["message"], err
        out = cli(c, "cluster", "sign-committee-change", str(up), "--as", "admin-2")
        assert out["signers"] == ["admin-1", "admin-2"], out
        out = cli(c, "cluster", "reshare", "--threshold", "3", "--document", str(up))
        assert out["reshared"] == 1, out
        shown = cli(c, "keys", "show", kid)
        assert shown["threshold"] == 3 and shown["public_key"] == public, shown
        _signs(c, kid, public)

        add = tmp_path / "add.json"
        cli(c, "cluster", "committee-change", "--members", "1,2,3,4,5", "--out", str(add),
            "--as", "admin-2")  # fmt: skip
        cli(c, "cluster", "sign-committee-change", str(add), "--as", "admin-3")
        err = cli(c, "cluster", "add-node", "--document", str(up), ok=False)
        assert err["error"]["code"] == "committee_change_mismatch", err
        out = cli(c, "cluster", "add-node", "--document", str(add))
        assert out["node"] == 5 and out["reshared"] == 1, out
        shown = cli(c, "keys", "show", kid)
        assert sorted(shown["participants"]) == [1, 2, 3, 4, 5] and shown["threshold"] == 3
        _signs(c, kid, public)

        # The first document again (threshold 3 over nodes 1..4 is a real change now): refused.
        err = cli(c, "keys", "reshare", kid, "--threshold", "3", "--members", "1,2,3,4",
                  "--document", str(up), ok=False)  # fmt: skip
        assert "already applied" in err["error"]["message"], err
    finally:
        procs.down(c.cd)
    for i in range(1, 6):
        db = NodeConfig.load(c.cd.node_config(i)).db
        audit = b"".join(p.read_bytes() for p in db.parent.glob("audit.db*") if p.is_file())
        assert b"committee_change" in audit and b"admin-2" in audit, i
