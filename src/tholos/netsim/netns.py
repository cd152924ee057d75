"""Test hosts in Linux network namespaces: one namespace per host, joined to the root namespace by
a veth pair with a /30 of its own, so a node on its "own machine" is reached only through the
address we gave it (and, for WAN runs, through a relay in the root namespace).

Needs root and iproute2 (`ip netns`, veth); `available()` says whether this machine has both.
Only addresses inside namespaces this module made are ever used: 10.231.<k>.1 (root side) and
10.231.<k>.2 (host side) for host k in 1..250.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

PREFIX = "10.231"


def available() -> bool:
    """True if namespaces can be made here (root and the `ip` tool)."""
    return os.geteuid() == 0 and shutil.which("ip") is not None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class Host:
    """One namespace. `address` is where its servers listen; `gateway_side` the root side."""

    name: str
    index: int

    @property
    def namespace(self) -> str:
        return f"tholos-{self.name}"

    @property
    def address(self) -> str:
        return f"{PREFIX}.{self.index}.2"

    @property
    def gateway_side(self) -> str:
        return f"{PREFIX}.{self.index}.1"

    @property
    def _veth(self) -> tuple[str, str]:
        return f"thv{self.index}r", f"thv{self.index}h"

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def create(self) -> Host:
        root, inside = self._veth
        self.destroy()
        _ip("netns", "add", self.namespace)
        _ip("link", "add", root, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", self.namespace)
        _ip("addr", "add", f"{self.gateway_side}/30", "dev", root)
        _ip("link", "set", root, "up")
        ns = ("netns", "exec", self.namespace, "ip")
        _ip(*ns, "addr", "add", f"{self.address}/30", "dev", inside)
        _ip(*ns, "link", "set", inside, "up")
        _ip(*ns, "link", "set", "lo", "up")
        return self

    def set_link(self, up: bool) -> None:
        """Take the host's link down (a pulled cable) or bring it back."""
        _ip("link", "set", self._veth[0], "up" if up else "down")

    def destroy(self) -> None:
        """Remove the namespace and its veth pair (no error if absent)."""
        subprocess.run(["ip", "link", "del", self._veth[0]], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)


def make_hosts(names: Sequence[str], first_index: int = 1) -> list[Host]:
    """Create one host per name (indices from `first_index`); destroy them with `destroy_hosts`."""
    if first_index < 1 or first_index + len(names) > 251:
        raise ValueError("host indices must stay within 1..250")
    hosts: list[Host] = []
    try:
        for offset, name in enumerate(names):
            hosts.append(Host(name, first_index + offset).create())
    except BaseException:
        destroy_hosts(hosts)
        raise
    return hosts


def destroy_hosts(hosts: Sequence[Host]) -> None:
    for host in hosts:
        host.destroy()
