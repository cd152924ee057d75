"""Committee changes on real processes (CLI, gateway, nodes, mutual TLS): n=4, t=2 -> add a node
(n=5) -> threshold 3 -> remove node 2 -> replace node 3, keys of every scheme signing or
decrypting after each step with unchanged public keys (checked with independent verifiers), the
removed node's saved old share useless with t-1 current shares, and a node SIGKILLed in the
middle of a reshare losing nothing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import LocalCluster, wait_until
from tests.cluster.verify import verify
from tholos.cluster import procs
from tholos.cluster.directory import ClusterDir
from tholos.crypto.keys import KeyShare
from tholos.node.barrier import Barrier, Unsealer, open_master

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
FROST = ("bip340", "ed25519", "secp256k1")
SCHEMES = (*FROST, "ecdsa", "bls12381", "dise")


def cli(c: LocalCluster, *args: str, ok: bool = True) -> dict[str, Any]:
    p = subprocess.run(
        [sys.executable, "-m", "tholos", *args, "--json", "--dir", str(c.cd.root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    assert (p.returncode == 0) == ok, (out, p.stderr)
    return out


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A 4-node, t=2 cluster started by `tholos cluster up` (pid files: the CLI restarts it)."""
    c = LocalCluster(tmp_path / "c", 4, 2)
    try:
        cli(c, "cluster", "up")
        yield c
    finally:
        c.http.close()
        procs.down(c.cd)


def saved_share(cd: ClusterDir, node_dir: Path, node: int, key_id: str) -> dict[str, Any]:
    """What an attacker takes from a node's disk: the master record and the sealed share row."""
    db = sqlite3.connect(f"file:{node_dir / 'node.db'}?mode=ro", uri=True)
    try:
        (master,) = db.execute("SELECT v FROM meta WHERE k = 'master'").fetchone()
        row = db.execute("SELECT sealed FROM keys WHERE key_id = ?", (key_id,)).fetchone()
    finally:
        db.close()
    return {"passphrase": cd.passphrase_file(node), "master": master, "sealed": row}


def open_share(saved: dict[str, Any], key_id: str) -> KeyShare[Any]:
    """Open a saved sealed share with the node's passphrase (D/secrets, development layout)."""
    unsealer = Unsealer(passphrase=saved["passphrase"].read_bytes().rstrip(b"\r\n"))
    barrier = Barrier(open_master(unsealer, saved["master"]))
    secret = json.loads(barrier.open("keys", key_id, bytes(saved["sealed"][0])))
    return KeyShare.import_secret(secret)


class Keys:
    """One key of every scheme, and what must hold of them after every committee change."""

    def __init__(self, c: LocalCluster, tmp: Path) -> None:
        self.c = c
        self.tmp = tmp
        self.keys = {s: c.create_key(s) for s in SCHEMES}
        self.xpub = c.get(f"/v1/keys/{self.keys['bip340']['key_id']}/derive", path="m/0/1")
        plain = tmp / "plain.bin"
        plain.write_bytes(os.urandom(5000))
        self.ct = tmp / "plain.ct"
        cli(c, "encrypt", self.keys["dise"]["key_id"], "--in", str(plain), "--out", str(self.ct))
        self.plain = plain.read_bytes()
        self.step = 0

    def check(self, holders: list[int], threshold: dict[str, int]) -> None:
        from coincurve import PublicKey
        from py_ecc.bls import G2ProofOfPossession

        self.step += 1
        c = self.c
        for s, k in self.keys.items():
            row = c.get(f"/v1/keys/{k['key_id']}")
            assert row["public_key"] == k["public_key"], s
            assert row["participants"] == holders, (s, row)
            assert row["threshold"] == threshold.get(s, threshold["*"]), (s, row)
        msg = hashlib.sha256(b"step %d" % self.step).digest()
        for s in FROST:
            r = c.sign(self.keys[s]["key_id"], msg)
            assert verify(s, msg, bytes.fromhex(r["signature"]), bytes.fromhex(r["public_key"]))
            assert r["public_key"] == self.keys[s]["public_key"]
        kid = self.keys["ecdsa"]["key_id"]
        c.post(f"/v1/keys/{kid}/presign", {"count": 4})
        r = c.sign(kid, msg)
        sig = bytes.fromhex(r["signature"])
        from tests.cluster.test_round_schemes import _der

        pk = PublicKey(bytes.fromhex(self.keys["ecdsa"]["public_key"]))
        assert pk.verify(_der(sig), msg, hasher=None)
        r = c.sign(self.keys["bls12381"]["key_id"], msg)
        assert G2ProofOfPossession.Verify(
            bytes.fromhex(self.keys["bls12381"]["public_key"]), msg, bytes.fromhex(r["signature"])
        )
        out = self.tmp / f"out-{self.step}.bin"
        cli(c, "decrypt", self.keys["dise"]["key_id"], "--in", str(self.ct), "--out", str(out))
        assert out.read_bytes() == self.plain
        xpub = c.get(f"/v1/keys/{self.keys['bip340']['key_id']}/derive", path="m/0/1")
        assert xpub == self.xpub


def test_add_threshold_remove_replace(cluster: LocalCluster, tmp_path: Path) -> None:
    from py_ecc.bls import G2ProofOfPossession

    from tholos.crypto.bls import threshold as bls
    from tholos.crypto.groups.bls12381 import BLS12_381_G2

    c = cluster
    keys = Keys(c, tmp_path)
    keys.check([1, 2, 3, 4], {"*": 2})

    r = cli(c, "cluster", "add-node")
    assert r["node"] == 5 and r["reshared"] == len(SCHEMES), r
    assert (c.cd.node_dir(5) / "tls.pem").exists() and c.cd.node_config(5).exists()
    keys.check([1, 2, 3, 4, 5], {"*": 2})

    r = cli(c, "cluster", "reshare", "--threshold", "3")
    assert r["reshared"] == len(SCHEMES) and r["uncommitted"] == {}, r
    assert json.loads(c.cd.gateway_config.read_text())["threshold"] == 3
    keys.check([1, 2, 3, 4, 5], {"*": 3})

    # Threshold ECDSA at t=3 needs 5 signers: removing a node is refused until it is reshared.
    err = cli(c, "cluster", "remove-node", "2", ok=False)
    assert err["error"]["code"] == "bad_threshold", err
    keys.check([1, 2, 3, 4, 5], {"*": 3})
    cli(c, "keys", "reshare", keys.keys["ecdsa"]["key_id"], "--threshold", "2")

    bls_id = keys.keys["bls12381"]["key_id"]
    old2 = saved_share(c.cd, c.cd.node_dir(2), 2, bls_id)
    r = cli(c, "cluster", "remove-node", "2")
    assert r["removed"] == 2 and r["old_share_not_deleted"] == {}, r
    removed = Path(r["directory"])
    assert saved_share(c.cd, removed, 2, bls_id)["sealed"] is None  # deleted on node 2
    keys.check([1, 3, 4, 5], {"*": 3, "ecdsa": 2})

    # The removed node's saved share with t-1 = 2 current shares makes no valid signature;
    # three current shares do (the same computation, so the check can fail).
    old_share = open_share(old2, bls_id)
    current = {
        i: open_share(saved_share(c.cd, c.cd.node_dir(i), i, bls_id), bls_id) for i in (1, 4, 5)
    }
    pk = bytes.fromhex(keys.keys["bls12381"]["public_key"])
    msg = b"after removal"

    def combined(shares: list[KeyShare[Any]]) -> bytes:
        points = {s.identifier: bls.sign_share(s, msg).signature for s in shares}
        return BLS12_381_G2.serialize_element(bls._interpolate(points))

    assert G2ProofOfPossession.Verify(pk, msg, combined(list(current.values())))
    assert not G2ProofOfPossession.Verify(pk, msg, combined([old_share, current[1], current[4]]))

    old3 = saved_share(c.cd, c.cd.node_dir(3), 3, bls_id)
    r = cli(c, "cluster", "replace-node", "3")
    assert r["replaced"] == 3 and r["by"] == 6, r
    keys.check([1, 4, 5, 6], {"*": 3, "ecdsa": 2})
    new = {i: open_share(saved_share(c.cd, c.cd.node_dir(i), i, bls_id), bls_id) for i in (1, 4, 6)}
    assert G2ProofOfPossession.Verify(pk, msg, combined(list(new.values())))
    assert not G2ProofOfPossession.Verify(
        pk, msg, combined([open_share(old3, bls_id), new[1], new[4]])
    )
    roster = {int(n["node_id"]) for n in json.loads(c.cd.manifest.read_text())["roster"]}
    assert roster == {1, 4, 5, 6}


def _prepared(db: Path) -> int:
    """Shares node 4 prepared (reshare finish) and has not committed: read from its database."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
    try:
        return int(con.execute("SELECT COUNT(*) FROM pending_keys").fetchone()[0])
    finally:
        con.close()


def test_node_killed_mid_reshare_loses_nothing(cluster: LocalCluster, tmp_path: Path) -> None:
    """Node 4 is SIGKILLed in the middle of a `cluster reshare`: as soon as its database shows
    shares prepared but not committed (the two-phase commit's crash window; or, if that window
    was missed, once the first chunk is reported). Every key keeps working; after node 4's
    restart the gateway re-sends what it missed and a re-run completes every key."""
    c = cluster
    ids = [k["key_id"] for k in c.post("/v1/keys", {"scheme": "ed25519", "count": 150})["keys"]]
    before = {k: c.get(f"/v1/keys/{k}")["public_key"] for k in ids}
    db = c.cd.node_dir(4) / "node.db"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tholos",
            "cluster",
            "reshare",
            "--threshold",
            "3",
            "--json",
            "--dir",
            str(c.cd.root),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid = int((c.cd.run_dir / "node-4.pid").read_text())
    window = ""
    while p.poll() is None and not window:
        try:
            if _prepared(db):
                window = "prepared, not committed"
        except sqlite3.Error:
            pass
    if not window:
        window = "after the reshare"
    os.kill(pid, signal.SIGKILL)
    stdout, _err = p.communicate(timeout=300)
    first = json.loads(stdout.strip().splitlines()[-1])
    print(f"node 4 killed {window}; the reshare said: {first}")
    cli(c, "cluster", "up")  # node 4 again; the gateway re-sends any commit it missed

    def settled() -> bool:
        return not any(c.get(f"/v1/keys/{k}")["uncommitted"] for k in ids)

    wait_until(settled, 90, "missed commits re-sent")
    r = cli(c, "cluster", "reshare", "--threshold", "3")
    assert r["uncommitted"] == {}, r
    msg = b"after the crash"
    for k in ids:
        row = c.get(f"/v1/keys/{k}")
        assert row["public_key"] == before[k] and row["threshold"] == 3, row
        s = c.sign(k, msg)
        assert verify("ed25519", msg, bytes.fromhex(s["signature"]), bytes.fromhex(before[k]))
    wait_until(lambda: _prepared(db) == 0, 30, "node 4 holds no uncommitted share")
    health = c.get("/v1/cluster")["shares"]
    assert all(h["stale_keys"] == [] for h in health.values()), health
