"""`tholos encrypt/decrypt --as USER` on a governed cluster: real node and gateway processes over
mutual TLS. Node 1 evaluates wrongly (--fault corrupt-shares): the CLI opens every sealed partial,
names node 1 and asks again without it. A user outside the key's group is refused by the nodes;
a gateway answering with another key is refused by the CLI's pin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.test_governance import GovCluster
from tholos.crypto.dise import Ciphertext
from tholos.governance import User
from tholos.node.dise_governance import key_group

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def cli(c: GovCluster, *args: str, ok: bool = True) -> dict[str, Any]:
    p = subprocess.run(
        [sys.executable, "-m", "tholos", *args, "--json", "--dir", str(c.cd.root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    assert (p.returncode == 0) == ok, (out, p.stderr)
    return out


@pytest.fixture
def c(tmp_path: Path) -> Iterator[GovCluster]:
    c = GovCluster(tmp_path / "g", 4, 2)
    yield c
    c.close()


def test_governed_encrypt_decrypt_with_sealed_partials(c: GovCluster, tmp_path: Path) -> None:
    c.start(node_args={1: ["--fault", "corrupt-shares"]})
    key = c.create_key("dise")
    kid = key["key_id"]
    users = tuple(
        User(**{**u.model_dump(), "groups": (key_group(kid),)}) if u.user_id == "initiator" else u
        for u in c.document().document.users
    )
    assert c.adopt(c.next_doc(users=users), "admin-1", "admin-2")["adopted_by"] == c.n

    src = tmp_path / "plain.bin"
    src.write_bytes(os.urandom(2000))
    bad_nodes: list[list[int]] = []
    for k in range(3):  # signers rotate: node 1 is chosen at least once
        ct, out = tmp_path / f"c{k}.enc", tmp_path / f"p{k}.out"
        e = cli(c, "encrypt", kid, "--in", str(src), "--out", str(ct), "--as", "initiator")
        d = cli(c, "decrypt", kid, "--in", str(ct), "--out", str(out), "--as", "initiator")
        assert out.read_bytes() == src.read_bytes()
        assert Ciphertext.from_bytes(ct.read_bytes()).encryptor == "initiator"
        for r in (e, d):
            assert 1 not in r["signers"], r
            bad_nodes.append(r.get("bad_nodes", []))
    assert [1] in bad_nodes and all(b in ([], [1]) for b in bad_nodes), bad_nodes
    # The pin recorded at first use is the key's group key from `keys create`.
    assert (c.cd.root / "pins" / f"dise-{kid}").read_text().strip() == key["public_key"]

    # Not in dise:<key> (nor dise): every node refuses, nothing to decrypt with.
    err = cli(
        c,
        "decrypt",
        kid,
        "--in",
        str(ct),
        "--out",
        str(tmp_path / "x"),
        "--as",
        "approver-1",
        ok=False,
    )["error"]
    assert "PolicyRefused[permission]" in err["message"], err
    # The encryptor of a governed encryption is the user.
    err = cli(
        c,
        "encrypt",
        kid,
        "--in",
        str(src),
        "--out",
        str(tmp_path / "y"),
        "--as",
        "initiator",
        "--encryptor",
        "someone-else",
        ok=False,
    )["error"]
    assert "encryptor" in err["message"], err
    # A public key other than the pinned one is refused before anything is asked.
    err = cli(
        c,
        "decrypt",
        kid,
        "--in",
        str(ct),
        "--out",
        str(tmp_path / "z"),
        "--as",
        "initiator",
        "--public-key",
        "11" * 32,
        ok=False,
    )["error"]
    assert err["code"] == "key_mismatch", err
    # Without --as, a governed cluster is not asked at all.
    err = cli(c, "decrypt", kid, "--in", str(ct), "--out", str(tmp_path / "w"), ok=False)["error"]
    assert "--as" in err["message"], err
