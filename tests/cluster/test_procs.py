"""`tholos cluster down` returns only once every process has exited, killing stragglers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tholos.cluster import procs
from tholos.cluster.layout import ClusterDir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

# On SIGTERM the main thread exits first (its command line then reads empty) while another
# thread keeps the process running for a while: what a node's gRPC threads do while it shuts down.
LINGERS = """
import ctypes, os, signal, sys, threading, time
def term(*_):
    threading.Thread(target=lambda: (time.sleep(3), os._exit(0))).start()
    ctypes.CDLL(None).pthread_exit(None)
signal.signal(signal.SIGTERM, term)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""
PLAIN = """
import time
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""
IGNORES_TERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[ClusterDir, list[subprocess.Popen[bytes]]]]:
    """A cluster directory whose "processes" are stand-ins started under the right names."""
    cd = ClusterDir(tmp_path / "cl")
    cd.root.mkdir()
    cd.manifest.write_text(json.dumps({"nodes": 2}))
    started: list[subprocess.Popen[bytes]] = []
    yield cd, started
    for p in started:
        p.kill()
        p.wait()
        if p.stdout is not None:
            p.stdout.close()


def _start(cd: ClusterDir, name: str, cfg: Path, code: str) -> subprocess.Popen[bytes]:
    cd.run_dir.mkdir(exist_ok=True)
    # The config path is on the command line, as for a real node: it is how procs knows it is ours.
    p = subprocess.Popen([sys.executable, "-c", code, str(cfg)], stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    (cd.run_dir / f"{name}.pid").write_text(str(p.pid))
    return p


def test_down_waits_until_every_process_has_exited(
    cluster: tuple[ClusterDir, list[subprocess.Popen[bytes]]],
) -> None:
    cd, started = cluster
    for i in (1, 2):
        started.append(_start(cd, f"node-{i}", cd.node_config(i), LINGERS))
    started.append(_start(cd, "gateway", cd.gateway_config, LINGERS))
    out = procs.down(cd)
    still = [p.pid for p in started if p.poll() is None]  # poll() reaps the exited ones
    assert still == [], f"still running after `cluster down` returned: {still}"
    assert sorted(out["stopped"]) == ["gateway", "node-1", "node-2"] and out["killed"] == []
    assert not list(cd.run_dir.glob("*.pid"))


def test_down_kills_a_process_that_ignores_sigterm_and_says_so(
    cluster: tuple[ClusterDir, list[subprocess.Popen[bytes]]],
) -> None:
    cd, started = cluster
    started.append(_start(cd, "node-1", cd.node_config(1), IGNORES_TERM))
    started.append(_start(cd, "node-2", cd.node_config(2), PLAIN))
    out = procs.down(cd, wait=0.5)
    assert out["killed"] == ["node-1"] and sorted(out["stopped"]) == ["node-1", "node-2"]
    assert [p.poll() for p in started] == [-9, -15]
    assert procs.down(cd) == {"stopped": [], "killed": []}
