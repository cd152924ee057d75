"""The node's side of the signer: start the process, then call the message set over its socket.

`launch` starts `python -m tholos.node.signer` for a node config, in a fresh 0700 directory
holding the socket, waits for its ready line and returns a connected `SignerClient`. Calls are
serialized on one connection; a refusal raises `SignerRefused` (or, for per-item operations,
comes back as that item's error).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tholos.crypto.dise import EvalRequest, PartialEval
from tholos.node.signer import wire
from tholos.node.signer.process import READY, signing_request_to_wire
from tholos.node.vault import ShareResult, VaultError
from tholos.schemes import SigningRequest

START_TIMEOUT = 120.0


class SignerRefused(VaultError):
    """The signer refused a request (its message names why) or cannot be reached."""


class SignerClient:
    """One connection to a signer; every method is one message of the set."""

    def __init__(self, path: Path, process: subprocess.Popen[bytes] | None = None) -> None:
        self.path = path
        self.process = process
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        #: the protections the signer reported at start (status)
        self.protections: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"SignerClient({self.path})"

    def _connect(self) -> socket.socket:
        if self._sock is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(self.path))
            self._sock = s
        return self._sock

    def call(self, op: str, **args: Any) -> Any:
        """The result of one request; SignerRefused with the signer's reason otherwise."""
        frame = wire.encode(wire.request(op, **args))
        with self._lock:
            try:
                sock = self._connect()
                sock.sendall(frame)
                reply = wire.read_frame(sock)
            except (OSError, wire.WireError) as exc:
                self.close()
                raise SignerRefused(f"signer unreachable: {type(exc).__name__}: {exc}") from None
            if reply is None:
                self.close()
                raise SignerRefused("signer closed the connection")
        if reply.get("storage_full") is True:  # the node answers RESOURCE_EXHAUSTED, as for its own
            raise OSError(errno.ENOSPC, str(reply.get("error", "storage full")))
        if reply.get("ok") is not True:
            raise SignerRefused(f"signer refused: {reply.get('error', '?')}")
        return reply.get("result")

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    # -- the message set ---------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("status")
        return result

    def nonces(self, group: str, count: int) -> list[tuple[bytes, bytes, bytes]]:
        rows = self.call("nonces", group=group, count=count)
        return [(bytes.fromhex(i), bytes.fromhex(h), bytes.fromhex(b)) for i, h, b in rows]

    def frost_sign(
        self, requests: Sequence[SigningRequest], epochs: Mapping[str, int] | None
    ) -> list[ShareResult]:
        rows = self.call(
            "frost_sign",
            requests=[signing_request_to_wire(r) for r in requests],
            epochs=None
            if epochs is None
            else {r.request_id: epochs.get(r.request_id, 0) for r in requests},
        )
        return [
            ShareResult(str(r["request_id"]), bytes.fromhex(r["share"]), str(r["error"]))
            for r in rows
        ]

    def bls_sign(self, items: Sequence[tuple[str, str, bytes]]) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "bls_sign",
            items=[{"request_id": r, "key_id": k, "message": m.hex()} for r, k, m in items],
        )
        return result

    def dise_eval(self, key_id: str, request: EvalRequest) -> PartialEval:
        got = self.call(
            "dise_eval", items=[{"request_id": "", "key_id": key_id, "request": request.to_dict()}]
        )[""]
        if "error" in got:
            raise SignerRefused(str(got["error"]))
        return PartialEval.from_dict(got["partial"])

    def ecdsa_sign(
        self, items: Sequence[tuple[str, str, bytes, bytes, int]]
    ) -> dict[str, int | str]:
        got = self.call(
            "ecdsa_sign",
            items=[
                {
                    "request_id": r,
                    "key_id": k,
                    "presig": p.hex(),
                    "digest": d.hex(),
                    "tweak": f"{t:x}",
                }
                for r, k, p, d, t in items
            ],
        )
        return {rid: str(v["error"]) if "error" in v else int(v["s"], 16) for rid, v in got.items()}


def launch(config: Path, env: Mapping[str, str] | None = None) -> SignerClient:
    """Start the signer of the node configured by `config` and connect to it."""
    run_dir = Path(tempfile.mkdtemp(prefix="tholos-signer-"))  # 0700, this user's
    path = run_dir / "signer.sock"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tholos.node.signer",
            "--config",
            str(config),
            "--socket",
            str(path),
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
    )
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + START_TIMEOUT
    # a selector, not select(): a process with many files open has descriptors past FD_SETSIZE
    with selectors.DefaultSelector() as waiting:
        waiting.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            if waiting.select(1.0):
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
    if not line.startswith(READY.encode()):
        proc.kill()
        proc.wait()
        proc.stdout.close()
        shutil.rmtree(run_dir, ignore_errors=True)
        raise SignerRefused(f"the signer did not start (exit {proc.returncode}); see its stderr")
    client = SignerClient(path, proc)
    client.protections = json.loads(line[len(READY) :].decode())
    return client


def stop(client: SignerClient) -> None:
    """End a signer started by `launch` and remove its socket directory."""
    client.close()
    if client.process is not None:
        client.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            client.process.wait(timeout=10)
        if client.process.poll() is None:
            client.process.kill()
            client.process.wait()
        if client.process.stdout is not None:
            client.process.stdout.close()
    shutil.rmtree(client.path.parent, ignore_errors=True)
