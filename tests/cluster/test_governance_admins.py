"""A governed cluster whose admins bring their own keys, end to end through the CLI and real
processes: keygen, `cluster init --admins`, `genesis sign` by each admin, `genesis finalize`, then
users and policy adopted by admin-quorum documents, and a governed taproot request signed."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from coincurve import PublicKeyXOnly
from embit import ec

from tests.cluster.conftest import LocalCluster
from tholos.cli import main as cli_main
from tholos.cluster.governance_init import default_policy
from tholos.cluster.layout import ClusterDir
from tholos.governance import Policy
from tholos.transport.tls import client_ssl_context

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


class ExistingCluster(LocalCluster):
    """A LocalCluster over a directory already written by `tholos cluster init`."""

    def __init__(self, root: Path) -> None:
        self.cd = ClusterDir(root)
        self.manifest = self.cd.load()
        self.n, self.t = int(self.manifest["nodes"]), int(self.manifest["threshold"])
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.url = self.manifest["gateway"]
        self.http = httpx.Client(
            base_url=self.url, verify=client_ssl_context(self.cd.client_tls), timeout=60
        )
        (root / "run").mkdir(exist_ok=True)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[[Path], ExistingCluster]]:
    made: list[ExistingCluster] = []

    def start(root: Path) -> ExistingCluster:
        c = ExistingCluster(root)
        made.append(c)
        c.start()
        return c

    yield start
    for c in made:
        c.close()


def test_admins_with_their_own_keys_found_and_govern_the_cluster(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    started: Callable[[Path], ExistingCluster],
) -> None:
    root = tmp_path / "c"
    d = ["--dir", str(root)]

    def tholos(*args: str, ok: bool = True) -> dict[str, Any]:
        code = cli_main([*args, "--json"])
        out: dict[str, Any] = json.loads(capsys.readouterr().out)
        assert (code == 0) is ok, (args, out)
        return out

    keys = tmp_path / "keys"  # each person's own machine, in reality
    pubs = {
        name: tholos("users", "keygen", "--out", str(keys / f"{name}.key"))["public_key"]
        for name in ("alice", "bob", "carol", "ivan", "tina", "eve")
    }

    def as_(name: str, key: str | None = None) -> list[str]:
        return ["--as", name, "--key-file", str(keys / f"{key or name}.key")]

    admins = f"alice=@{keys}/alice.key.pub,bob={pubs['bob']}"
    r = tholos("cluster", "init", *d, "--governance", "--admins", admins,
               "--admins", f"carol=@{keys}/carol.key.pub", "--admin-quorum", "2")  # fmt: skip
    assert r["governance"] == "pending-genesis", r
    digest = r["genesis_digest"]
    assert not (root / "users").exists()

    r = tholos("genesis", "sign", *d, "--key-file", str(keys / "alice.key"))
    assert r["signers"] == ["alice"] and r["genesis_digest"] == digest, r
    assert tholos("cluster", "up", *d, ok=False)["error"]["code"] == "genesis_pending"
    assert "quorum is 2" in tholos("genesis", "finalize", *d, ok=False)["error"]["message"]
    tholos("genesis", "sign", *d, *as_("bob"))
    assert tholos("genesis", "finalize", *d)["governance"] == "governed"

    c = started(root)
    doc = c.get("/v1/governance")["document"]
    assert doc["document"]["version"] == 0
    assert {u["user_id"]: u["public_key"] for u in doc["document"]["users"]} == {
        n: pubs[n] for n in ("alice", "bob", "carol")
    }
    assert set(c.get("/v1/governance")["versions"].values()) == {0}

    # A document signed by the admins' own keys, and only by them, is adopted by every node.
    g = [*d]
    r = tholos("users", "add", "ivan", *g, "--public-key", pubs["ivan"], "--roles", "initiator",
               *as_("alice"))  # fmt: skip
    assert r["status"] == "open" and r["adopted_by"] == 0, r
    pid = r["proposal_id"]
    r = tholos("policy", "approve", pid, *g, *as_("bob", key="eve"))  # eve's key, bob's name
    assert r["status"] == "open" and r["adopted_by"] == 0, r
    r = tholos("policy", "approve", pid, *g, *as_("bob"))
    assert r["status"] == "adopted" and r["adopted_by"] == c.n, r

    r = tholos("users", "add", "tina", *g, "--public-key", pubs["tina"], "--roles", "approver",
               "--groups", "treasury", *as_("carol"))  # fmt: skip
    assert tholos("policy", "approve", r["proposal_id"], *g, *as_("alice"))["adopted_by"] == c.n
    policy = tmp_path / "policy.json"
    policy.write_text(Policy(rules=default_policy().rules[:1]).model_dump_json())
    r = tholos("policy", "propose", *g, "--file", str(policy), *as_("bob"))
    assert tholos("policy", "approve", r["proposal_id"], *g, *as_("carol"))["adopted_by"] == c.n
    assert set(c.get("/v1/governance")["versions"].values()) == {3}

    # A governed taproot request under that policy: signed once approved, under the output key.
    key = tholos("keys", "create", *g, "--scheme", "bip340")
    message, merkle_root = os.urandom(32), os.urandom(32)
    r = tholos("requests", "create", *g, *as_("ivan"), "--key-id", key["key_id"],
               "--destination", "addr-1", "--amount", "500", "--data", message.hex(),
               "--taproot-tweak", "--merkle-root", merkle_root.hex())  # fmt: skip
    assert r["status"] == "awaiting-approval" and r["intent"]["taproot"] is True, r
    r = tholos("requests", "approve", r["request_id"], *g, *as_("tina"))
    assert r["status"] == "signed", r
    internal = bytes.fromhex(key["public_key"])
    output = ec.PublicKey.from_xonly(internal).taproot_tweak(merkle_root).xonly()
    assert r["public_key"] == output.hex()
    assert PublicKeyXOnly(output).verify(bytes.fromhex(r["signature"]), message)
