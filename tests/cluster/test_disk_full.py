"""A node whose disk is full refuses cleanly and loses nothing (node directory on a tiny tmpfs).

Needs root (to mount a tmpfs); CI runs as root. Every write the node makes to sign (nonce use
marked durably before its share leaves) then fails: the gateway must sign with the other nodes,
and once space is back the node signs again with its shares intact.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import LocalCluster, wait_until
from tests.cluster.verify import verify

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk() -> Iterator[Callable[[Path], None]]:
    """Puts a directory on its own 24 MiB tmpfs (its files copied over)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs for the full-disk test needs root and mount(8)")
    mounted: list[Path] = []

    def mount(d: Path) -> None:
        saved = d.with_name(d.name + ".saved")
        shutil.copytree(d, saved)
        shutil.rmtree(d)
        d.mkdir(mode=0o700)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(d)])
        if r.returncode != 0:
            pytest.skip("this container may not mount a tmpfs")
        mounted.append(d)
        shutil.copytree(saved, d, dirs_exist_ok=True)

    yield mount
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], check=False)


def _fill(d: Path) -> Path:
    """Write a file until the filesystem of `d` has no space left."""
    filler = d / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_full_disk_node_refuses_cleanly_and_loses_nothing(
    make_cluster: Callable[..., LocalCluster], small_disk: Callable[[Path], None]
) -> None:
    c = make_cluster(4, 2)
    small_disk(c.cd.node_dir(1))
    c.start()
    keys = {s: c.create_key(s)["key_id"] for s in ("bip340", "ed25519")}
    filler = _fill(c.cd.node_dir(1))
    signed = 0
    for scheme, key_id in keys.items():
        for _ in range(6):
            msg = os.urandom(32)
            out = c.sign(key_id, msg)  # the gateway works around node 1
            assert verify(
                scheme, msg, bytes.fromhex(out["signature"]), bytes.fromhex(out["public_key"])
            )
            signed += 1
            assert 1 not in out["signers"], "a node that cannot write its nonce use must not sign"
    assert signed == 12
    assert c.procs["node-1"].poll() is None, "the node must not crash on a full disk"
    log = c.log("node-1")
    assert "disk full" in log and "Traceback" not in log  # a clear line, no internal error
    filler.unlink()
    # Space is back: with nodes 3 and 4 gone, every signature needs node 1 and its old shares.
    c.kill("node-3")
    c.kill("node-4")
    for scheme, key_id in keys.items():
        msg = os.urandom(32)
        out = wait_until(lambda k=key_id, m=msg: c.sign(k, m), 60, f"{scheme} signed by 1 and 2")
        assert sorted(out["signers"]) == [1, 2]
        assert verify(
            scheme, msg, bytes.fromhex(out["signature"]), bytes.fromhex(out["public_key"])
        )
