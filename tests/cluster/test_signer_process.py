"""Multi-process: a cluster whose nodes open shares only in their signer processes
(`"signer": true`) signs with every scheme (checked by independent verifiers), keeps signing
after a refresh replaced the shares under the signers, and reports each node's protections."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import LocalCluster, wait_until
from tests.cluster.test_round_schemes import _der
from tests.cluster.verify import verify

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path_factory.mktemp("signer") / "c", 4, 2)
    for i in range(1, 5):
        path = c.cd.node_config(i)
        cfg = json.loads(path.read_text())
        path.write_text(json.dumps({**cfg, "signer": True}))
    try:
        c.start()
        yield c
    finally:
        c.close()


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                status = (d / "status").read_text()
            except OSError:
                continue
            ppid = next(x for x in status.splitlines() if x.startswith("PPid:"))
            if int(ppid.split()[1]) == pid:
                out.append(int(d.name))
    return out


def test_each_node_reports_its_signer_and_protections(cluster: LocalCluster) -> None:
    protections = cluster.get("/v1/cluster")["protections"]
    for i in range(1, 5):
        prot = protections[str(i)]
        assert prot["core_dumps"] == "off (RLIMIT_CORE=0)", prot
        assert prot["ptrace"] == "blocked (PR_SET_DUMPABLE=0)", prot
        assert prot["secret_files"] == "owner only", prot
        assert prot["memory_lock"] == "locked (mlockall)" or prot["memory_lock"].startswith(
            "not locked: "
        )
        # the reported signer is a child process of that node, and non-dumpable per the kernel
        pid = int(prot["signer"].removeprefix("process "))
        assert pid in _children(cluster.procs[f"node-{i}"].pid)
        assert Path(f"/proc/{pid}/mem").stat().st_uid == 0


@pytest.mark.parametrize("scheme", ["bip340", "ed25519", "secp256k1"])
def test_frost_schemes_sign(cluster: LocalCluster, scheme: str) -> None:
    key = cluster.create_key(scheme)
    for msg in (os.urandom(32), os.urandom(32)):
        res = cluster.sign(key["key_id"], msg)
        assert verify(
            scheme, msg, bytes.fromhex(res["signature"]), bytes.fromhex(key["public_key"])
        )
    # the shares are replaced under the signers (refresh): they sign with the new ones
    assert cluster.post(f"/v1/keys/{key['key_id']}/refresh", {})["refreshed"] is True
    msg = os.urandom(32)
    res = cluster.sign(key["key_id"], msg)
    assert verify(scheme, msg, bytes.fromhex(res["signature"]), bytes.fromhex(key["public_key"]))


def test_ecdsa_bls_and_dise(cluster: LocalCluster) -> None:
    from coincurve import PublicKey
    from py_ecc.bls import G2ProofOfPossession

    key = cluster.create_key("ecdsa")
    cluster.post(f"/v1/keys/{key['key_id']}/presign", {"count": 4})
    digest = hashlib.sha256(b"tholos signer").digest()
    res = cluster.sign(key["key_id"], digest)
    assert PublicKey(bytes.fromhex(key["public_key"])).verify(
        _der(bytes.fromhex(res["signature"])), digest, hasher=None
    )
    bk = cluster.create_key("bls12381")
    res = cluster.sign(bk["key_id"], b"attestation")
    assert G2ProofOfPossession.Verify(
        bytes.fromhex(bk["public_key"]), b"attestation", bytes.fromhex(res["signature"])
    )
    from tholos.crypto import dise
    from tholos.crypto.keys import PublicKeyPackage

    dk = cluster.create_key("dise")
    public = PublicKeyPackage.from_dict(
        cluster.get(f"/v1/keys/{dk['key_id']}")["public_key_package"]
    )

    def evaluate(req: dise.EvalRequest) -> list[dise.PartialEval]:
        body = {"alpha": req.alpha.hex(), "encryptor": req.encryptor, "purpose": req.purpose}
        res = cluster.post(f"/v1/keys/{dk['key_id']}/evaluate", {**body, "verify": True})
        return [dise.PartialEval.from_dict(p) for p in res["partials"]]

    ctx, req = dise.encrypt_begin(public, "tester", b"sealed by the signers")
    ct = dise.encrypt_finish(public, ctx, evaluate(req))  # each partial's DLEQ proof checked
    parts = evaluate(dise.decrypt_begin(public, ct))
    assert dise.decrypt_finish(public, ct, parts) == b"sealed by the signers"


def _secrets_of(cluster: LocalCluster, node: int) -> dict[str, bytes]:
    """Node `node`'s master key and share scalars (32-byte big-endian and as hex text), read
    from its database with its master key the way its signer does."""
    from tholos.node.barrier import Barrier
    from tholos.node.config import NodeConfig
    from tholos.node.signer.process import master_key
    from tholos.node.store import NodeStore
    from tholos.node.vault import KeyVault

    cfg = NodeConfig.load(cluster.cd.node_config(node))
    store = NodeStore(cfg.db)
    try:
        master = master_key(cfg, store)
        vault = KeyVault(store, Barrier(master), node)
        out = {"master key": master}
        for key_id in store.key_ids():
            s = vault.record(key_id).share.secret_share.expose().to_bytes(32, "big")
            out[f"share {key_id}"] = s
            out[f"share {key_id} (hex)"] = s.hex().encode()
        return out
    finally:
        store.close()


def _memory(pid: int) -> bytes:
    """Every readable region of process `pid` (root: /proc/PID/mem of a non-dumpable one)."""
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            addr, perms = line.split()[:2]
            if not perms.startswith("r") or "[vvar]" in line:
                continue
            lo, hi = (int(x, 16) for x in addr.split("-"))
            try:
                mem.seek(lo)
                chunks.append(mem.read(hi - lo))
            except (OSError, ValueError, OverflowError):
                continue
    return b"".join(chunks)


@pytest.mark.skipif(os.geteuid() != 0, reason="reading another process's memory needs root")
def test_shares_and_master_key_are_in_the_signer_process(cluster: LocalCluster) -> None:
    """The control of the memory check: node 1's master key and share scalars are found in its
    signer process (so a search that finds nothing is not passing by accident)."""
    secrets = _secrets_of(cluster, 1)
    assert len(secrets) > 3, "the earlier tests made keys"
    pid = int(cluster.get("/v1/cluster")["protections"]["1"]["signer"].removeprefix("process "))
    memory = _memory(pid)
    assert "master key" in [n for n, v in secrets.items() if v in memory]
    found = {n.split()[1] for n, v in secrets.items() if n != "master key" and v in memory}
    assert found, "no share of node 1 in its signer's memory"


@pytest.mark.skipif(os.geteuid() != 0, reason="reading another process's memory needs root")
@pytest.mark.xfail(
    reason="not yet: the node still unwraps the master key and seals DKG/refresh shares itself",
    strict=True,  # the master key is always in the node today; passing means: drop this mark
)
def test_node_process_holds_no_share_nor_master_key(cluster: LocalCluster) -> None:
    """The goal of the signer process: none of node 1's share scalars nor its master key is in the memory of
    the network-facing node process (with `signer` on)."""
    secrets = _secrets_of(cluster, 1)
    memory = _memory(cluster.procs["node-1"].pid)
    found = [n for n, v in secrets.items() if v in memory]
    assert found == [], f"in the node process: {found}"


def test_signer_ends_with_its_node(cluster: LocalCluster) -> None:
    """Last in the file: node 4 is killed without a chance to stop its signer (SIGKILL); the
    signer ends too (PR_SET_PDEATHSIG), so no process holding shares is left behind."""
    prot: dict[str, Any] = cluster.get("/v1/cluster")["protections"]["4"]
    pid = int(prot["signer"].removeprefix("process "))
    cluster.kill("node-4", signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), 60, "signer gone")


def _zombie(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
