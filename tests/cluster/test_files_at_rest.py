"""Files at rest after a real `cluster init` and start: owner-only files and directories, and no
unsealing passphrase inside any node's directory."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cluster.conftest import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _modes(root: Path) -> dict[str, int]:
    out = {}
    for p in [root, *root.rglob("*")]:
        out[str(p.relative_to(root)) + ("/" if p.is_dir() else "")] = stat.S_IMODE(p.stat().st_mode)
    return out


def test_files_are_owner_only_and_passphrases_live_outside_node_dirs(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    c = make_cluster()
    c.start()
    c.create_key("ed25519")
    c.stop_all()
    modes = _modes(c.cd.root)
    assert any(k.endswith("node.db-wal") or k.endswith("node.db") for k in modes)
    loose = {k: oct(m) for k, m in modes.items() if m & 0o077 and not k.startswith("run/")}
    assert loose == {}, f"readable by group or others: {loose}"
    dirs = {k: oct(m) for k, m in modes.items() if k.endswith("/") and m != 0o700}
    assert dirs == {} or set(dirs) <= {"run/"}, dirs
    for i in range(1, c.n + 1):
        secret = c.cd.passphrase_file(i).read_bytes()
        assert not c.cd.passphrase_file(i).is_relative_to(c.cd.node_dir(i))
        for f in c.cd.node_dir(i).rglob("*"):
            if f.is_file():
                assert secret not in f.read_bytes(), f"node {i}'s passphrase is in {f}"
