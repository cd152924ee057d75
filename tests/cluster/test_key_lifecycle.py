"""Key lifecycle through the CLI and REST on real processes (nodes, gateway; mutual TLS), and the
README's curl example."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest

from tests.cluster.conftest import LocalCluster
from tests.cluster.test_repair import cli, sign_and_verify
from tholos.node.config import NodeConfig

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
Make = Callable[..., LocalCluster]


def curl(c: LocalCluster, client: str, path: str, body: dict[str, object] | None = None) -> object:
    """The README's REST example: the cluster CA and a client certificate of the cluster dir."""
    d = c.cd.root
    gw = json.loads((d / "cluster.json").read_text())["gateway"]
    cert = d / client
    args = ["curl", "-s", "--cacert", str(d / "ca/ca.pem"), "--cert", str(cert / "client.pem")]
    args += ["--key", str(cert / "client.key"), f"{gw}{path}"]
    if body is not None:
        args += ["-H", "content-type: application/json", "-d", json.dumps(body)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_disable_label_tag_destroy(make_cluster: Make) -> None:
    c = make_cluster()
    c.start()
    key, other = c.create_key("bip340"), c.create_key("ed25519")
    kid = key["key_id"]
    assert curl(c, "client", "/v1/cluster")["nodes"][0]["state"] == "up"  # type: ignore[index]
    _, out = cli(c, "keys", "disable", kid)
    assert out["disabled"] is True
    code, err = cli(c, "sign", kid, "--message", "00" * 32, ok=False)
    assert code != 0 and err["error"]["code"] == "key_disabled", err
    refused = curl(c, "clients/signer", f"/v1/keys/{kid}/sign", {"message": "00ff"})
    assert refused["error"]["code"] == "key_disabled", refused  # type: ignore[index]
    # The signer role may sign but not enable; an admin may.
    denied = curl(c, "clients/operator", f"/v1/keys/{kid}/enable", {})
    assert denied["error"]["code"] == "forbidden", denied  # type: ignore[index]
    cli(c, "keys", "enable", kid)
    signed = curl(c, "clients/signer", f"/v1/keys/{kid}/sign", {"message": "00ff"})
    assert "signature" in signed, signed  # type: ignore[operator]
    _, out = cli(c, "keys", "label", kid, "--label", "treasury hot")
    assert out["label"] == "treasury hot"
    _, out = cli(c, "keys", "tag", kid, "--add", "env:prod", "--add", "team/a")
    assert out["tags"] == ["env:prod", "team/a"]
    _, shown = cli(c, "keys", "show", kid)
    assert shown["tags"] == ["env:prod", "team/a"] and shown["label"] == "treasury hot"
    code, err = cli(c, "keys", "destroy", kid, "--confirm", other["key_id"], ok=False)
    assert code != 0 and err["error"]["code"] == "confirm_mismatch"
    dbs = {i: NodeConfig.load(c.cd.node_config(i)).db for i in range(1, 5)}
    _, out = cli(c, "keys", "destroy", kid, "--confirm", kid)
    assert out["nodes"] == {"1": True, "2": True, "3": True, "4": True}, out
    code, err = cli(c, "keys", "show", kid, ok=False)
    assert code != 0 and err["error"]["code"] == "unknown_key"
    for i in range(1, 5):
        files = [p for p in dbs[i].parent.glob(dbs[i].name + "*") if p.is_file()]
        assert not any(kid.encode() in p.read_bytes() for p in files), i  # share and state gone
        audit = b"".join(p.read_bytes() for p in dbs[i].parent.glob("audit.db*") if p.is_file())
        assert b"key_destroy" in audit and kid.encode() in audit, i  # and audited
    sign_and_verify(c, other, {-9})
