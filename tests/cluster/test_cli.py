"""The `tholos` CLI against a cluster it starts itself (`cluster init/up/status/down`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from coincurve import PrivateKey

from tests.cluster.verify import verify

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def tholos(
    *args: str, env: dict[str, str] | None = None, ok: bool = True
) -> tuple[int, dict[str, Any]]:
    p = subprocess.run(
        [sys.executable, "-m", "tholos", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, (p.stdout, p.stderr)
    out = json.loads(lines[0])
    if ok:
        assert p.returncode == 0, (out, p.stderr)
    return p.returncode, out


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "cl"
    yield d
    subprocess.run(
        [sys.executable, "-m", "tholos", "cluster", "down", "--dir", str(d)],
        capture_output=True,
        timeout=60,
    )
    for pid_file in (d / "run").glob("*.pid") if (d / "run").exists() else []:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_cli_end_to_end(cluster_dir: Path, tmp_path: Path) -> None:
    d = str(cluster_dir)
    _, init = tholos("cluster", "init", "--dir", d, "--nodes", "4", "--threshold", "2")
    assert init["nodes"] == 4 and init["threshold"] == 2
    code, err = tholos("cluster", "init", "--dir", d, ok=False)
    assert code != 0 and err["error"]["message"]
    _, up = tholos("cluster", "up", "--dir", d)
    assert up["gateway"].startswith("https://127.0.0.1:")
    env = {"THOLOS_DIR": d}
    _, st = tholos("cluster", "status", env=env)
    assert all(p["running"] for p in st["processes"].values())

    for scheme, length in (("bip340", 32), ("ed25519", 32), ("secp256k1", 33)):
        _, key = tholos("keys", "create", "--scheme", scheme, "--label", f"l-{scheme}", env=env)
        assert key["scheme"] == scheme and len(bytes.fromhex(key["public_key"])) == length
        msg = os.urandom(32)
        _, sig = tholos("sign", key["key_id"], "--message", msg.hex(), env=env)
        assert verify(
            scheme, msg, bytes.fromhex(sig["signature"]), bytes.fromhex(key["public_key"])
        )
    _, listed = tholos("keys", "list", env=env)
    assert len(listed["keys"]) == 3
    _, shown = tholos("keys", "show", key["key_id"], env=env)
    assert shown["public_key"] == key["public_key"]

    # derive + sign along the path
    _, der = tholos("keys", "derive", key["key_id"], "--path", "m/0/1", env=env)
    assert der["xpub"].startswith("xpub") and len(bytes.fromhex(der["public_key"])) == 33
    msg = os.urandom(32)
    _, sig = tholos("sign", key["key_id"], "--message", msg.hex(), "--path", "m/0/1", env=env)
    assert sig["public_key"] == der["public_key"]
    assert verify(
        "secp256k1", msg, bytes.fromhex(sig["signature"]), bytes.fromhex(der["public_key"])
    )

    # taproot
    _, tk = tholos("keys", "create", "--scheme", "bip340", env=env)
    _, sig = tholos("sign", tk["key_id"], "--message", msg.hex(), "--taproot-tweak", env=env)
    assert sig["public_key"] != tk["public_key"]
    assert verify("bip340", msg, bytes.fromhex(sig["signature"]), bytes.fromhex(sig["public_key"]))

    # import a hex key: the public key is the secret's
    sk = PrivateKey()
    f = tmp_path / "secret"
    f.write_text(sk.secret.hex())
    _, imp = tholos("keys", "import", "--scheme", "secp256k1", "--secret-file", str(f), env=env)
    assert imp["public_key"] == sk.public_key.format(compressed=True).hex()
    _, shown = tholos("keys", "show", imp["key_id"], env=env)
    assert shown["imported"] is True
    _, sig = tholos("sign", imp["key_id"], "--message", msg.hex(), env=env)
    assert verify(
        "secp256k1", msg, bytes.fromhex(sig["signature"]), bytes.fromhex(imp["public_key"])
    )
    _, imp2 = tholos("keys", "import", "--scheme", "bip340", "--secret-file", str(f), env=env)
    assert imp2["public_key"] == sk.public_key.format(compressed=True)[1:].hex()

    # refresh keeps the public key and signing works afterwards
    _, ref = tholos("keys", "refresh", imp["key_id"], env=env)
    assert ref["public_key"] == imp["public_key"]
    _, sig = tholos("sign", imp["key_id"], "--message", msg.hex(), env=env)
    assert verify(
        "secp256k1", msg, bytes.fromhex(sig["signature"]), bytes.fromhex(imp["public_key"])
    )

    # errors: non-zero exit and a JSON error
    code, err = tholos("sign", "0" * 32, "--message", "00", env=env, ok=False)
    assert code != 0 and err["error"]["status"] == 404
    code, err = tholos("sign", key["key_id"], "--message", "xyz", env=env, ok=False)
    assert code != 0 and err["error"]["code"] == "malformed_hex"
    code, err = tholos("keys", "list", env={"THOLOS_DIR": ""}, ok=False)
    assert code != 0 and "THOLOS_DIR" in err["error"]["message"]

    _, down = tholos("cluster", "down", "--dir", d)
    assert "gateway" in down["stopped"]
    code, err = tholos("keys", "list", env=env, ok=False)
    assert code != 0 and err["error"]["code"] == "unreachable"
