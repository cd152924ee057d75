"""A governed threshold ECDSA request end to end: real node and gateway processes over mutual TLS,
driven by the `tholos` CLI (keys create/presign, requests create/approve/show, audit verify)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from coincurve import PublicKey
from eth_keys import keys as eth_keys

from tests.cluster.test_governance import GovCluster
from tholos.cli import main as cli_main
from tholos.crypto.ecdsa.signature import EcdsaSignature

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _cli(*args: str) -> tuple[int, dict[str, Any]]:
    """`tholos ARGS --json` in this process."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli_main([*args, "--json"])
    return code, json.loads(buf.getvalue() or "{}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[GovCluster]:
    c = GovCluster(tmp_path / "g", 4, 2)
    try:
        yield c
    finally:
        c.close()


def test_governed_ecdsa_request_via_the_cli(cluster: GovCluster) -> None:
    c = cluster
    c.start()
    d = ("--dir", str(c.cd.root))
    code, key = _cli("keys", "create", "--scheme", "ecdsa", *d)
    assert code == 0, key
    kid, public = key["key_id"], bytes.fromhex(key["public_key"])
    code, out = _cli("keys", "presign", kid, "--count", "10", *d)
    assert code == 0 and out["available"] >= 10, out
    digest = os.urandom(32)

    # A plain sign request is refused by every node of a governed cluster.
    code, out = _cli("sign", kid, "--message", digest.hex(), *d)
    assert code != 0 and "governed" in json.dumps(out), out

    # Only the 32-byte digest is signed: any other payload is refused up front.
    code, out = _cli(
        "requests", "create", "--key-id", kid, "--destination", "0xabc", "--amount", "100",
        "--data", "00" * 31, "--as", "initiator", *d,
    )  # fmt: skip
    assert code != 0 and "32-byte digest" in json.dumps(out), out

    code, out = _cli(
        "requests", "create", "--key-id", kid, "--destination", "0xabc", "--amount", "100",
        "--data", digest.hex(), "--as", "initiator", *d,
    )  # fmt: skip
    assert code == 0 and out["status"] == "awaiting-approval", out
    assert len(out["refusals"]) == 3 and "approvals" in out["error"], out
    rid = out["request_id"]

    code, out = _cli("requests", "approve", rid, "--as", "approver-1", *d)
    assert code == 0 and out["status"] == "signed", out
    code, shown = _cli("requests", "show", rid, *d)
    assert code == 0 and shown["status"] == "signed" and len(shown["signers"]) == 3, shown
    assert bytes.fromhex(shown["public_key"]) == public
    sig = bytes.fromhex(shown["signature"])
    assert len(sig) == 65 and sig[64] in (0, 1)
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
    assert PublicKey(public).verify(EcdsaSignature(r, s, sig[64]).to_der(), digest, hasher=None)
    address = eth_keys.PublicKey.from_compressed_bytes(public).to_checksum_address()
    recovered = eth_keys.Signature(sig).recover_public_key_from_msg_hash(digest)
    assert recovered.to_checksum_address() == address

    # Signed once: a second approval is refused, and every audit chain verifies.
    code, out = _cli("requests", "approve", rid, "--as", "approver-2", *d)
    assert code != 0 and "already" in json.dumps(out), out
    code, out = _cli("audit", "verify", *d)
    assert code == 0, out
