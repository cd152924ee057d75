"""Multi-process tests: real node and gateway processes, real sockets, real mutual TLS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest

from tests.cluster.conftest import LocalCluster, wait_until
from tests.cluster.verify import r_of, verify
from tholos.rpc import node_pb2 as pb
from tholos.rpc import node_pb2_grpc
from tholos.transport.pki import CertificateAuthority
from tholos.transport.tls import TlsFiles, client_ssl_context, grpc_channel_credentials

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
SCHEMES = ["bip340", "ed25519", "secp256k1"]
Make = Callable[..., LocalCluster]


def _check(c: LocalCluster, key: dict[str, Any], res: dict[str, Any], msg: bytes) -> None:
    assert "signature" in res, res
    assert verify(
        key["scheme"], msg, bytes.fromhex(res["signature"]), bytes.fromhex(res["public_key"])
    )


def test_dkg_and_signing_every_scheme(make_cluster: Make) -> None:
    c = make_cluster()
    c.start()
    for scheme in SCHEMES:
        key = c.create_key(scheme)
        pk = bytes.fromhex(key["public_key"])
        assert len(pk) == {"bip340": 32, "ed25519": 32, "secp256k1": 33}[scheme]
        msg = os.urandom(32)
        res = c.sign(key["key_id"], msg)
        assert res["public_key"] == key["public_key"]
        _check(c, key, res, msg)
        assert len(bytes.fromhex(res["signature"])) == (65 if scheme == "secp256k1" else 64)
        msgs = [os.urandom(32) for _ in range(20)]
        for m, r in zip(msgs, c.sign_many(key["key_id"], msgs), strict=True):
            _check(c, key, r, m)
    # Derived and taproot-tweaked signatures verify under the derived keys.
    key = c.create_key("bip340")
    d = c.get(f"/v1/keys/{key['key_id']}/derive", path="m/0/1")
    msg = os.urandom(32)
    res = c.sign(key["key_id"], msg, path="m/0/1")
    assert res["public_key"] == d["public_key"]
    _check(c, key, res, msg)
    res = c.sign(key["key_id"], msg, path="m/0/1", taproot_tweak=True)
    assert res["public_key"] != d["public_key"]
    _check(c, key, res, msg)


def test_node_sigkilled_mid_signing(make_cluster: Make) -> None:
    c = make_cluster()
    c.start()
    key = c.create_key("secp256k1")
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(
            base_url=c.url, verify=client_ssl_context(c.cd.client_tls), timeout=60
        ) as h:
            while not stop.is_set():
                msgs = [os.urandom(32) for _ in range(50)]
                try:
                    r = h.post(
                        "/v1/sign",
                        json={
                            "requests": [
                                {"key_id": key["key_id"], "message": m.hex()} for m in msgs
                            ]
                        },
                    )
                    assert r.status_code == 200, r.text
                    results.extend(
                        {**x, "msg": m} for m, x in zip(msgs, r.json()["results"], strict=True)
                    )
                except BaseException as exc:
                    errors.append(exc)
                    return

    th = threading.Thread(target=load)
    th.start()
    wait_until(lambda: len(results) >= 200, 60, "signatures before the kill")
    c.kill("node-1")  # SIGKILL while requests are in flight
    before = len(results)
    wait_until(lambda: "node 1 marked down" in c.log("gateway"), 30, "the gateway to notice")
    wait_until(lambda: len(results) >= before + 400 or errors, 60, "signatures after the kill")
    stop.set()
    th.join(60)
    assert not errors, errors
    failed = [r for r in results if "signature" not in r]
    assert not failed, failed[:3]
    for r in results[-50:]:
        _check(c, key, r, r["msg"])
    assert all(1 not in r["signers"] for r in results[before + 100 :])


def test_corrupt_node_is_named_and_excluded(make_cluster: Make) -> None:
    c = make_cluster()
    c.start(node_args={2: ["--fault", "corrupt-shares"]})
    key = c.create_key("bip340")
    named = None
    for _ in range(8):
        msg = os.urandom(32)
        res = c.sign(key["key_id"], msg)
        _check(c, key, res, msg)
        assert 2 not in res["signers"]
        if res["excluded"]:
            named = res
            break
    assert named is not None, "node 2 was never picked"
    assert named["excluded"] == {"2": "invalid signature share"}
    assert "node 2 EXCLUDED" in c.log("gateway")
    status = c.get("/v1/cluster")
    assert next(n for n in status["nodes"] if n["node_id"] == 2)["state"] == "excluded"


def test_slow_node_is_skipped(make_cluster: Make) -> None:
    # The slow node stalls 30 s on every request; 10 s is far above what a healthy node needs on
    # a loaded machine (1.5 s was not: a healthy node then timed out too, the flake) and far below
    # the stall, so which node times out no longer depends on the machine's load.
    c = make_cluster()
    c.configure_gateway(rpc_timeout=10.0)
    c.start()
    key = c.create_key("ed25519")
    c.kill("node-3")
    c.start_node(3, "--fault", "slow", env={"THOLOS_ALLOW_FAULTS": "1"})
    c.wait_healthy()
    timed_out = None
    for _ in range(12):  # until node 3 is picked (it is skipped while marked down or slow)
        msg = os.urandom(32)
        res = c.sign(key["key_id"], msg)
        _check(c, key, res, msg)
        assert 3 not in res["signers"]
        if res["excluded"].get("3") == "timed out":
            timed_out = res
            break
        time.sleep(0.5)
    assert timed_out is not None, "node 3 was never picked"
    assert next(n for n in c.get("/v1/cluster")["nodes"] if n["node_id"] == 3)["state"] == "slow"
    for _ in range(5):  # now it is not chosen at all: no more waiting on it
        msg = os.urandom(32)
        res = c.sign(key["key_id"], msg)
        _check(c, key, res, msg)
        assert res["excluded"] == {} and 3 not in res["signers"]


def test_restart_after_sigkill_keeps_keys_and_never_reuses_nonces(make_cluster: Make) -> None:
    c = make_cluster()
    c.start()
    keys = [c.create_key(s) for s in SCHEMES]
    seen: dict[str, set[bytes]] = {k["key_id"]: set() for k in keys}

    def sign_round(count: int) -> None:
        for k in keys:
            msgs = [os.urandom(32) for _ in range(count)]
            for m, r in zip(msgs, c.sign_many(k["key_id"], msgs), strict=True):
                _check(c, k, r, m)
                rr = r_of(bytes.fromhex(r["signature"]))
                assert rr not in seen[k["key_id"]], "two signatures share R: nonce reuse"
                seen[k["key_id"]].add(rr)

    sign_round(30)
    for _ in range(2):
        c.kill("node-1")
        c.kill("node-3")
        sign_round(10)  # nodes 2 and 4 carry on
        c.start_node(1)
        c.start_node(3)
        c.wait_healthy()
        # Force the restarted nodes to sign: take the others out.
        c.kill("node-2")
        c.kill("node-4")
        sign_round(30)
        c.start_node(2)
        c.start_node(4)
        c.wait_healthy()
    info = c.get("/v1/cluster")
    assert all(n["keys"] == len(keys) for n in info["nodes"])


def test_whole_cluster_restart_keeps_every_key(make_cluster: Make) -> None:
    c = make_cluster()
    c.start()
    keys = [c.create_key(s) for s in SCHEMES for _ in range(2)]
    c.stop_all()
    c.start()
    listed = {k["key_id"] for k in c.get("/v1/keys")["keys"]}
    assert listed == {k["key_id"] for k in keys}
    for k in keys:
        msg = os.urandom(32)
        res = c.sign(k["key_id"], msg)
        assert res["public_key"] == k["public_key"]
        _check(c, k, res, msg)


def test_foreign_ca_is_refused(make_cluster: Make, tmp_path: Any) -> None:
    c = make_cluster()
    c.start()
    other = CertificateAuthority.create("attacker CA")
    leaf = other.issue("gateway-client", server=False, client=True)
    d = tmp_path / "foreign"
    d.mkdir()
    (d / "cert.pem").write_bytes(leaf.cert_pem)
    (d / "key.pem").write_bytes(leaf.key_pem)
    # Trust the real CA (so the server is accepted) but present a certificate of another CA.
    files = TlsFiles(c.cd.root / "ca" / "ca.pem", d / "cert.pem", d / "key.pem")
    addr = c.manifest["node_addresses"]["1"]
    ch = grpc.secure_channel(
        addr, grpc_channel_credentials(files), options=[("grpc.ssl_target_name_override", "node-1")]
    )
    with pytest.raises(grpc.RpcError) as exc:
        node_pb2_grpc.NodeStub(ch).Info(pb.InfoRequest(), timeout=5)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    ch.close()
    # The legitimate client certificate works on the same node.
    ok = TlsFiles(
        c.cd.root / "ca" / "ca.pem",
        c.cd.root / "gateway" / "node-client.pem",
        c.cd.root / "gateway" / "node-client.key",
    )
    ch = grpc.secure_channel(
        addr, grpc_channel_credentials(ok), options=[("grpc.ssl_target_name_override", "node-1")]
    )
    assert node_pb2_grpc.NodeStub(ch).Info(pb.InfoRequest(), timeout=5).node_id == 1
    ch.close()
    # The REST API refuses the foreign client certificate too.
    with (
        httpx.Client(base_url=c.url, verify=client_ssl_context(files), timeout=5) as h,
        pytest.raises(httpx.HTTPError),
    ):
        h.get("/v1/health")


def test_wrong_passphrase_keeps_node_down(make_cluster: Make) -> None:
    c = make_cluster()
    c.start()
    c.create_key("ed25519")
    c.kill("node-4", signal.SIGTERM)
    pf = c.cd.passphrase_file(4)
    good = pf.read_bytes()
    pf.write_bytes(b"not the passphrase")
    p = subprocess.run(
        [sys.executable, "-m", "tholos", "node", "--config", str(c.cd.node_config(4))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 3
    assert "wrong passphrase" in p.stderr
    pf.write_bytes(good)
    c.start_node(4)
    c.wait_healthy()


def test_fault_flag_needs_env(make_cluster: Make) -> None:
    c = make_cluster()
    env = {k: v for k, v in os.environ.items() if k != "THOLOS_ALLOW_FAULTS"}
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "tholos",
            "node",
            "--config",
            str(c.cd.node_config(1)),
            "--fault",
            "corrupt-shares",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert p.returncode != 0
    assert "THOLOS_ALLOW_FAULTS" in p.stderr
