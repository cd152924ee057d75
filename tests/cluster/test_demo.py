"""`make run` (python -m tholos.demo) end to end: a governed cluster of real processes, a Solana
transfer signed through a request and three approvals, checked by libsodium, and a second transfer
rejected by an approver, which every node's journal then holds refused. Run twice on one
directory (the second run reuses the running cluster), then stopped."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from tholos.cli import main as cli_main
from tholos.cluster import procs
from tholos.cluster.layout import ClusterDir, init_cluster

ROOT = Path(__file__).resolve().parents[2]


def _demo(d: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tholos.demo", "--dir", str(d)],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=ROOT,
    )


def _journal(d: Path, node: int, request_id: str) -> str | None:
    db = sqlite3.connect(d / f"node-{node}" / "governance.db")
    try:
        row = db.execute(
            "SELECT status FROM journal WHERE request_id = ?", (request_id,)
        ).fetchone()
    finally:
        db.close()
    return None if row is None else str(row[0])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_make_run_demo(tmp_path: Path) -> None:
    d = tmp_path / "run"
    try:
        for attempt in (1, 2):
            p = _demo(d)
            assert p.returncode == 0, (attempt, p.stdout, p.stderr)
            lines = p.stdout.splitlines()
            out = json.loads(next(x for x in lines if x.startswith("{")))
            assert out["valid"] is True and out["rejected_status"] == "rejected", out
            assert "independent Ed25519 verification (libsodium): VALID" in p.stdout
            assert "approver-1's approval after it: refused (409 request_closed)" in p.stdout
            assert f"{d}/users/initiator.key" in p.stdout and "/console" in p.stdout
            assert ("initialised a governed" in p.stdout) == (attempt == 1), p.stdout
            assert [_journal(d, i, out["rejected"]) for i in range(1, 5)] == ["refused"] * 4
            assert sum(_journal(d, i, out["signed"]) == "signed" for i in range(1, 5)) >= 2
        _cli_rejects(d, out["wallet_id"])
        for key in (d / "users").glob("*.key"):
            assert key.stat().st_mode & 0o777 == 0o600, key
        p12 = d / "client" / "console.p12"
        password = (d / "client" / "console.p12.password").read_bytes()
        assert p12.stat().st_mode & 0o777 == 0o600
        key, cert, _ = pkcs12.load_key_and_certificates(p12.read_bytes(), password)
        assert key is not None and cert is not None
        assert cert.public_bytes(Encoding.PEM) == (d / "client" / "client.pem").read_bytes()
    finally:
        if (d / "cluster.json").exists():
            procs.down(ClusterDir(d))


def _cli(*args: str) -> tuple[int, dict[str, Any]]:
    """`tholos ARGS --json` in this process."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli_main([*args, "--json"])
    return code, json.loads(buf.getvalue() or "{}")


def _cli_rejects(d: Path, wallet_id: str) -> None:
    """`tholos requests reject` against the demo's cluster: signed with the approver's key file,
    every node refuses the request from then on; the initiator may not reject their own."""
    dd = ("--dir", str(d))
    code, wallet = _cli("wallets", "show", wallet_id, *dd)
    assert code == 0, wallet
    code, out = _cli(
        "requests", "create", "--key-id", wallet["key_id"], "--destination", "addr-a",
        "--amount", "100", "--data", "ab" * 32, "--as", "initiator", *dd,
    )  # fmt: skip
    assert code == 0 and out["status"] == "awaiting-approval", out
    rid = out["request_id"]
    code, out = _cli("requests", "reject", rid, "--as", "initiator", *dd)
    assert code != 0 and "cancel it instead" in json.dumps(out), out
    code, out = _cli("requests", "reject", rid, "--as", "approver-1", *dd)
    assert code == 0 and out["status"] == "rejected", out
    assert [_journal(d, i, rid) for i in range(1, 5)] == ["refused"] * 4
    code, out = _cli("requests", "approve", rid, "--as", "approver-2", *dd)
    assert code != 0 and "rejected" in json.dumps(out), out


def test_an_ungoverned_run_directory_is_refused_with_what_to_do(tmp_path: Path) -> None:
    """An older `make run` left a cluster without governance: the demo says what to do, starts
    nothing and changes nothing."""
    d = tmp_path / "old"
    init_cluster(d, 4, 2)
    before = sorted(p.name for p in d.iterdir())
    p = _demo(d)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "without governance" in p.stderr and "make stop" in p.stderr, p.stderr
    assert sorted(x.name for x in d.iterdir()) == before
    assert not (d / "run").exists()
