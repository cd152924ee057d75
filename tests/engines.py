"""Chain engines nobody here wrote, found or skipped with a message saying how to install them.

anvil (revm) comes from npm, pinned in tests/chains/engines: `.ci/run` installs it with
`npm ci --prefix tests/chains/engines`. Under CI=true a missing engine fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ANVIL_INSTALL = "npm ci --prefix tests/chains/engines"


def _missing(what: str) -> None:
    message = f"{what} is not installed ({ANVIL_INSTALL})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def anvil_binary() -> str:
    local = ROOT / "tests" / "chains" / "engines" / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return str(local)
    found = os.environ.get("THOLOS_ANVIL") or shutil.which("anvil")
    if found is None:
        _missing("anvil")
    assert found is not None
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_anvil(chain_id: int = 31337) -> Iterator[str]:
    """An anvil node on 127.0.0.1 (instant mining); yields its JSON-RPC URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            anvil_binary(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--chain-id",
            str(chain_id),
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("anvil did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
