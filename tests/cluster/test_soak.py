"""`tholos soak` over real processes: a node SIGKILLed under load loses no request."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.cluster.conftest import LocalCluster

pytestmark = pytest.mark.slow


def test_soak_with_a_node_killed_and_restarted_loses_nothing(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    c = make_cluster(4, 2)
    c.start()
    soak = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tholos",
            "soak",
            "--dir",
            str(c.cd.root),
            "--minutes",
            "0.5",
            "--rate",
            "8",
            "--timeout",
            "20",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert soak.stderr is not None
        seen = b""
        while b"requests/s for" not in seen:  # keys made, the load starts
            line = soak.stderr.readline()
            assert line, seen.decode()
            seen += line
        time.sleep(5)
        c.kill("node-4")
        time.sleep(6)
        c.start_node(4)
        out, err = soak.communicate(timeout=180)
    finally:
        if soak.poll() is None:
            soak.kill()
            soak.communicate()
    assert soak.returncode == 0, (out + err).decode()[-3000:]
    result = json.loads(out)
    assert result["lost"] == 0 and result["wrong"] == 0 and result["shed"] == 0
    assert result["ok"] >= 0.9 * result["sent"] > 0, result
    assert {op.split(":")[0] for op in result["by_operation"]} >= {
        "sign/bip340",
        "sign/ed25519",
        "sign/secp256k1",
        "sign/ecdsa",
        "sign/bls12381",
        "sign-batch",
        "dise/roundtrip",
    }
