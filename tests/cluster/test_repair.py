"""Share repair and the refresh crash window on real processes (nodes, gateway, CLI; mutual TLS)."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests.cluster.conftest import LocalCluster, wait_until
from tests.cluster.verify import verify
from tholos.node.barrier import is_sealed_file
from tholos.node.config import NodeConfig

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
Make = Callable[..., LocalCluster]


def cli(c: LocalCluster, *args: str, ok: bool = True) -> tuple[int, dict[str, Any]]:
    p = subprocess.run(
        [sys.executable, "-m", "tholos", *args, "--dir", str(c.cd.root), "--json"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, (p.stdout, p.stderr)
    out: dict[str, Any] = json.loads(lines[0])
    if ok:
        assert p.returncode == 0, (out, p.stderr)
    return p.returncode, out


def node_up(c: LocalCluster, i: int) -> bool:
    return any(n["node_id"] == i and n["state"] == "up" for n in c.get("/v1/cluster")["nodes"])


def restart(c: LocalCluster, i: int, wipe: bool = False) -> None:
    """Restart node i (after it was killed or crashed), its database deleted if `wipe`."""
    c.kill(f"node-{i}")
    wait_until(lambda: not node_up(c, i), 30, f"node {i} seen down")
    if wipe:
        db = NodeConfig.load(c.cd.node_config(i)).db
        for suffix in ("", "-wal", "-shm"):
            db.with_name(db.name + suffix).unlink(missing_ok=True)
    c.start_node(i)
    wait_until(lambda: node_up(c, i), 30, f"node {i} up again")


def only_signers(c: LocalCluster, signers: set[int]) -> None:
    """Kill every other node, so the gateway must sign with exactly `signers`."""
    for i in range(1, c.n + 1):
        if i not in signers:
            c.kill(f"node-{i}")
    wait_until(
        lambda: (
            {n["node_id"] for n in c.get("/v1/cluster")["nodes"] if n["state"] == "up"} == signers
        ),
        30,
        f"only nodes {signers} up",
    )


def sign_and_verify(c: LocalCluster, key: dict[str, Any], signers: set[int]) -> dict[str, Any]:
    """Sign; the signers must be exactly `signers`, or not intersect `-signers` if negative."""
    msg = os.urandom(32)
    res = c.sign(key["key_id"], msg)
    if min(signers) > 0:
        assert set(res["signers"]) == signers, res
    else:
        assert not set(res["signers"]) & {-i for i in signers}, res
    assert verify(
        key["scheme"], msg, bytes.fromhex(res["signature"]), bytes.fromhex(key["public_key"])
    )
    return res


def test_disk_lost_node_is_repaired_and_a_lying_helper_named(make_cluster: Make) -> None:
    c = make_cluster()
    c.start(node_args={2: ["--fault", "corrupt-repair"]})
    keys = [c.create_key("bip340"), c.create_key("ed25519"), c.create_key("secp256k1")]
    # Identity secrets are sealed under the passphrase (done in place at first start).
    cfg = NodeConfig.load(c.cd.node_config(3))
    assert is_sealed_file(cfg.identity_file) and is_sealed_file(cfg.tls.key)
    assert b"PRIVATE KEY" not in cfg.tls.key.read_bytes()
    # Node 3 loses its disk and comes back empty, with the same identity (new master key).
    restart(c, 3, wipe=True)
    wait_until(lambda: c.get("/v1/cluster")["nodes"][2]["keys"] == 0, 10, "node 3 empty")
    # One key: helpers 1 and 2 are tried first; node 2 lies, node 3 names it, 1 and 4 complete.
    _, one = cli(c, "keys", "repair", keys[0]["key_id"], "--node", "3")
    assert one["repaired"] == [keys[0]["key_id"]], one
    assert "named by node 3" in one["excluded"]["2"], one
    assert one["helpers"][keys[0]["key_id"]] == [1, 4]
    assert "node 2 EXCLUDED" in c.log("gateway")
    # Every other key of the node.
    _, rest = cli(c, "keys", "repair", "--all", "--node", "3")
    assert sorted(rest["repaired"]) == sorted(k["key_id"] for k in keys), rest
    # Bad requests: clear errors, non-zero exit.
    code, err = cli(c, "keys", "repair", "f" * 32, "--node", "3", ok=False)
    assert code != 0 and err["error"]["code"] == "unknown_key"
    code, err = cli(c, "keys", "repair", keys[0]["key_id"], "--node", "9", ok=False)
    assert code != 0 and err["error"]["code"] == "unknown_node"
    code, err = cli(c, "keys", "repair", "--node", "3", ok=False)
    assert code != 0 and "KEY_ID or --all" in err["error"]["message"]
    # Node 3 signs again: with nodes 1 and 2 gone, the signers are exactly {3, 4}.
    only_signers(c, {3, 4})
    for k in keys:
        sign_and_verify(c, k, {3, 4})


def crash_in_refresh(c: LocalCluster, kid: str) -> None:
    """Refresh `kid` while node 4 dies between its refresh finish and its commit: the refresh is
    recorded anyway (every node prepared it durably) and the response names node 4."""
    c.kill("node-4")
    wait_until(lambda: not node_up(c, 4), 30, "node 4 seen down")
    c.start_node(4, "--fault", "crash-before-commit", env={"THOLOS_ALLOW_FAULTS": "1"})
    wait_until(lambda: node_up(c, 4), 30, "node 4 up with the fault")
    _, r = cli(c, "keys", "refresh", kid)
    assert r["refreshed"] is True and r["uncommitted"] == [4], r
    assert c.procs["node-4"].wait(timeout=15) == 70
    wait_until(lambda: not node_up(c, 4), 30, "node 4 seen down")
    shown = c.get(f"/v1/keys/{kid}")
    assert shown["epoch"] == 1 and shown["uncommitted"] == [4], shown


def test_refresh_crash_window_detected_and_repaired(make_cluster: Make) -> None:
    c = make_cluster()
    c.start()
    key, other = c.create_key("bip340"), c.create_key("ed25519")
    kid, okid = key["key_id"], other["key_id"]
    crash_in_refresh(c, kid)
    assert c.get(f"/v1/keys/{kid}")["public_key"] == key["public_key"]
    # While node 4 is down a second refresh is refused, and signing works without it.
    r2 = c.http.post(f"/v1/keys/{kid}/refresh")
    assert r2.status_code == 409 and "refresh_uncommitted" in r2.text
    for _ in range(4):
        sign_and_verify(c, key, {-4})
    # Node 4 restarts with its prepared share: the gateway re-sends the stored commit by itself.
    c.start_node(4)
    wait_until(lambda: c.get(f"/v1/keys/{kid}")["uncommitted"] == [], 30, "commit re-sent")
    assert f"key {kid}: commit re-sent, nodes [4]" in c.log("gateway")
    clean = {"stale_keys": [], "broken_keys": [], "pending_refresh": 0, "unchecked_shares": 0}
    wait_until(lambda: c.get("/v1/cluster")["shares"]["4"] == clean, 10, "node 4 committed")
    # Next time node 4 also loses its prepared share: re-sending cannot help, the gateway says
    # so, node 4 refuses its stale share (not named as lying) until `keys repair` rebuilds it.
    crash_in_refresh(c, okid)
    db = NodeConfig.load(c.cd.node_config(4)).db
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        assert con.execute("DELETE FROM pending_keys").rowcount == 1
    c.start_node(4)
    wait_until(lambda: node_up(c, 4), 30, "node 4 up again")
    hint = f"run `tholos keys repair {okid} --node 4`"
    wait_until(lambda: hint in c.log("gateway"), 30, "lost preparation named")
    assert c.get(f"/v1/keys/{okid}")["uncommitted"] == [4]
    only_signers(c, {3, 4})
    res = c.http.post(f"/v1/keys/{okid}/sign", json={"message": "00" * 32})
    assert res.status_code == 503 and "stale share" in res.text, res.text
    assert "invalid signature share" not in res.text
    wait_until(lambda: c.get("/v1/cluster")["shares"]["4"]["stale_keys"] == [okid], 10, "stale")
    for i in (1, 2):
        c.start_node(i)
    c.wait_healthy()
    _, rep = cli(c, "keys", "repair", okid, "--node", "4")
    assert rep["committed"] == [] and rep["repaired"] == [okid], rep
    assert c.get(f"/v1/keys/{okid}")["uncommitted"] == []
    wait_until(lambda: c.get("/v1/cluster")["shares"]["4"]["stale_keys"] == [], 10, "not stale")
    only_signers(c, {3, 4})
    sign_and_verify(c, key, {3, 4})
    sign_and_verify(c, other, {3, 4})


def test_swapped_sealed_shares_are_reported_and_repaired(make_cluster: Make) -> None:
    """Issue: with two sealed blobs swapped on node 1's disk, the node said nothing, status
    showed no broken key and repair failed (SealError as an internal error)."""
    c = make_cluster()
    c.start()
    a, b, other = c.create_key("bip340"), c.create_key("ed25519"), c.create_key("bip340")
    ka, kb = a["key_id"], b["key_id"]
    c.kill("node-1")
    wait_until(lambda: not node_up(c, 1), 30, "node 1 seen down")
    db = NodeConfig.load(c.cd.node_config(1)).db
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        blobs = dict(
            con.execute("SELECT key_id, sealed FROM keys WHERE key_id IN (?, ?)", (ka, kb))
        )
        con.execute("UPDATE keys SET sealed = ? WHERE key_id = ?", (blobs[kb], ka))
        con.execute("UPDATE keys SET sealed = ? WHERE key_id = ?", (blobs[ka], kb))
    c.start_node(1)
    wait_until(lambda: node_up(c, 1), 30, "node 1 up again")
    # the signer scans its shares in the background after its start
    wait_until(lambda: "cannot open the sealed share" in c.log("node-1"), 30, "broken logged")
    broken = sorted([ka, kb])
    wait_until(
        lambda: c.get("/v1/cluster")["shares"]["1"]["broken_keys"] == broken, 10, "broken shown"
    )
    # Signing leaves node 1 out of the broken keys only, says why, and blames nobody.
    _, signed = cli(c, "sign", ka, "--message", "11" * 32)
    assert 1 not in signed["signers"] and "broken share" in signed["excluded"]["1"], signed
    sign_and_verify(c, other, {-9})  # any signers
    assert all(n["state"] == "up" for n in c.get("/v1/cluster")["nodes"])
    _, clean = cli(c, "sign", other["key_id"], "--message", "22" * 32)
    assert clean["excluded"] == {}, clean
    # Repair rebuilds both; then node 1 signs them again, with sets that include it.
    for k in (ka, kb):
        _, rep = cli(c, "keys", "repair", k, "--node", "1")
        assert rep["repaired"] == [k], rep
    assert c.get("/v1/cluster")["shares"]["1"]["broken_keys"] == []
    only_signers(c, {1, 2})
    for k in (a, b, other):
        sign_and_verify(c, k, {1, 2})
    c.kill("node-2")
    c.start_node(3)
    wait_until(lambda: node_up(c, 3) and not node_up(c, 2), 30, "nodes 1 and 3 up")
    for k in (a, b):
        sign_and_verify(c, k, {1, 3})
