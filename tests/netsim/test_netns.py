"""Hosts in network namespaces: a server inside one is reached at its address from the root
namespace (and through a relay), a pulled link cuts it off, and nothing is left behind."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from tholos.netsim import netns
from tholos.netsim.sites import RelayFleet, WanProfile

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not netns.available(), reason="network namespaces need root and iproute2"),
]

ECHO = (
    "import socket,sys\n"
    "s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "s.bind((sys.argv[1],int(sys.argv[2])));s.listen()\n"
    "print('ready',flush=True)\n"
    "while True:\n"
    "    c,_=s.accept()\n"
    "    d=c.recv(100)\n"
    "    c.sendall(d);c.close()\n"
)


def _ask(host: str, port: int, timeout: float = 2.0) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"hello")
        return sock.recv(100)


def test_server_in_a_namespace_is_reached_only_at_its_address() -> None:
    hosts = netns.make_hosts(["t-a", "t-b"], first_index=240)
    procs: list[subprocess.Popen[str]] = []
    try:
        for host in hosts:
            proc = subprocess.Popen(
                host.command([sys.executable, "-c", ECHO, host.address, "7000"]),
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        a, b = hosts
        assert _ask(a.address, 7000) == b"hello"
        assert _ask(b.address, 7000) == b"hello"
        with pytest.raises(OSError):
            _ask("127.0.0.1", 7000, timeout=0.5)  # not on the root namespace's loopback
        nodes = {1: f"{a.address}:7000", 2: f"{b.address}:7000"}
        with RelayFleet(nodes, WanProfile(inter_site_rtt_ms=2, intra_site_rtt_ms=0)) as fleet:
            host, port = fleet.addresses[2].rsplit(":", 1)
            assert _ask(host, int(port)) == b"hello"
        b.set_link(False)
        with pytest.raises(OSError):
            _ask(b.address, 7000, timeout=0.5)
        b.set_link(True)
        deadline = time.monotonic() + 5
        while True:
            try:
                assert _ask(b.address, 7000) == b"hello"
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        netns.destroy_hosts(hosts)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "tholos-t-a" not in listed and "tholos-t-b" not in listed
