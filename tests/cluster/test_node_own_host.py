"""Multi-process: a node set up in a directory of its own (not inside the cluster directory) by
`tholos node init`, its join request signed by `tholos cluster sign-node`, the bundle installed by
`tholos node join`, started by its operator, added with `tholos cluster add-node --request`; it
then signs with one original node while the others are stopped (checked by libsecp256k1 and
libsodium). The only files crossing between the two directories are the join request and the
bundle. Node 4 and, for the last signatures, the gateway run with writable-and-executable memory
refused by the kernel (what MemoryDenyWriteExecute=yes in deploy/systemd asks for)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import LocalCluster, wait_until
from tests.cluster.verify import verify
from tests.deploy import mdwe
from tholos.cluster import procs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
PASS = "the operators of node 4 keep this"


def cli(*args: str, env: dict[str, str] | None = None, ok: bool = True) -> dict[str, Any]:
    p = subprocess.run(
        [sys.executable, "-m", "tholos", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    out: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    assert (p.returncode == 0) == ok, (out, p.stderr)
    return out


def test_node_from_its_own_machine(tmp_path: Path) -> None:
    c = LocalCluster(tmp_path / "cluster", 3, 2)
    node_dir = tmp_path / "site-b" / "node-4"
    carried = tmp_path / "carried"  # what the operators hand over, nothing else
    carried.mkdir()
    own: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None
    hardened = mdwe.available()
    preexec = mdwe.deny_write_execute if hardened else None
    cluster = ["--dir", str(c.cd.root)]
    try:
        cli("cluster", "up", *cluster)
        keys = {s: c.create_key(s) for s in ("bip340", "ed25519")}

        out = cli(
            "node", "init", "--node-dir", str(node_dir), "--node-id", "4",
            env={"THOLOS_PASSPHRASE": PASS},
        )  # fmt: skip
        request = carried / "join-request.json"
        request.write_bytes(Path(out["request"]).read_bytes())
        bundle = carried / "bundle.json"
        signed = cli(
            "cluster", "sign-node", *cluster, "--request", str(request), "--out", str(bundle)
        )
        assert signed["peers"] == [1, 2, 3, 4]
        joined = cli(
            "node", "join", "--node-dir", str(node_dir), "--bundle", str(bundle),
            "--ca-fingerprint", signed["ca_fingerprint"],
        )  # fmt: skip
        assert joined["peers"] == [1, 2, 3, 4]
        for data in (p.read_bytes() for p in node_dir.rglob("*") if p.is_file()):
            assert PASS.encode() not in data

        log = open(tmp_path / "node-4.log", "ab")  # noqa: SIM115 - handed to the child
        own = subprocess.Popen(
            [sys.executable, "-m", "tholos", "node", "--config", str(node_dir / "node.json")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "THOLOS_PASSPHRASE": PASS},
            preexec_fn=preexec,
        )
        log.close()
        wait_until(lambda: "ready on" in (tmp_path / "node-4.log").read_text(), 90, "node 4 ready")

        added = cli("cluster", "add-node", *cluster, "--request", str(request))
        assert added["node"] == 4 and added["nodes"] == [1, 2, 3, 4], added
        assert added["reshared"] == len(keys) and added["uncommitted"] == {}, added
        assert not c.cd.node_dir(4).exists()
        assert procs.status(c.cd).keys() == {"node-1", "node-2", "node-3", "gateway"}

        # only node 3 of the original nodes and node 4 remain: the new node must sign
        for i in (1, 2):
            procs.stop_process(c.cd, f"node-{i}", c.cd.node_config(i))
        if hardened:  # the gateway too, for the signatures below
            procs.stop_process(c.cd, "gateway", c.cd.gateway_config)
            glog = open(tmp_path / "gateway.log", "ab")  # noqa: SIM115 - handed to the child
            gateway = subprocess.Popen(
                [sys.executable, "-m", "tholos", "gateway", "--config", str(c.cd.gateway_config)],
                stdout=glog,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=preexec,
            )
            glog.close()
        wait_until(lambda: c.get("/v1/health")["nodes_up"] == 2, 90, "two nodes up")
        msg = hashlib.sha256(b"signed with the node from its own machine").digest()
        for scheme, k in keys.items():
            assert c.get(f"/v1/keys/{k['key_id']}")["participants"] == [1, 2, 3, 4]
            r = c.sign(k["key_id"], msg)
            assert sorted(r["signers"]) == [3, 4], r
            assert r["public_key"] == k["public_key"]
            assert verify(
                scheme, msg, bytes.fromhex(r["signature"]), bytes.fromhex(k["public_key"])
            )
    finally:
        c.http.close()
        procs.down(c.cd)
        for p in (own, gateway):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
