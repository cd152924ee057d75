"""Multi-process cluster harness: real node and gateway processes on 127.0.0.1, real mutual TLS.

Every process started here is killed by the fixture's finalizer, whatever the test does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tholos.cluster.layout import ClusterDir, init_cluster
from tholos.transport.tls import client_ssl_context


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            v = predicate()
            if v:
                return v
        except Exception as exc:  # keep polling; report the last error on timeout
            last_exc = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_exc!r})")


class LocalCluster:
    def __init__(self, root: Path, n: int, t: int) -> None:
        self.cd = ClusterDir(root)
        self.manifest = init_cluster(root, n, t)
        self.n, self.t = n, t
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.url = self.manifest["gateway"]
        self.http = httpx.Client(
            base_url=self.url, verify=client_ssl_context(self.cd.client_tls), timeout=60
        )
        (root / "run").mkdir(exist_ok=True)

    def configure_gateway(self, **settings: Any) -> None:
        """Change gateway settings (timeouts...) before it starts."""
        cfg = json.loads(self.cd.gateway_config.read_text())
        cfg.update(settings)
        self.cd.gateway_config.write_text(json.dumps(cfg))

    # -- processes ---------------------------------------------------------------------------------
    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.cd.run_dir / f"{name}.log", "ab")  # noqa: SIM115
        p = subprocess.Popen(
            [sys.executable, "-m", "tholos", *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        log.close()
        self.procs[name] = p
        return p

    def start_node(
        self, i: int, *extra: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        return self._spawn(
            f"node-{i}", ["node", "--config", str(self.cd.node_config(i)), *extra], env
        )

    def start_gateway(self) -> None:
        self._spawn("gateway", ["gateway", "--config", str(self.cd.gateway_config)])

    def start(self, node_args: dict[int, list[str]] | None = None) -> None:
        for i in range(1, self.n + 1):
            args = (node_args or {}).get(i, [])
            self.start_node(i, *args, env={"THOLOS_ALLOW_FAULTS": "1"} if args else None)
        self.start_gateway()
        self.wait_healthy()

    def wait_healthy(self, nodes: int | None = None) -> None:
        want = self.n if nodes is None else nodes
        wait_until(lambda: self.get("/v1/health")["nodes_up"] >= want, 90, "cluster healthy")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs.get(name)
        if p is not None and p.poll() is None:
            p.send_signal(sig)
            p.wait(timeout=15)

    def stop_all(self) -> None:
        for name in list(self.procs):
            p = self.procs[name]
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def close(self) -> None:
        self.http.close()
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()

    def log(self, name: str) -> str:
        return (self.cd.run_dir / f"{name}.log").read_text(errors="replace")

    # -- REST ----------------------------------------------------------------------------------------
    def get(self, url: str, **params: Any) -> Any:
        r = self.http.get(url, params=params or None)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: dict[str, Any], expect: int | None = None) -> Any:
        r = self.http.post(path, json=body)
        if expect is not None:
            assert r.status_code == expect, r.text
        else:
            assert r.status_code < 300, r.text
        return r.json()

    def create_key(self, scheme: str) -> dict[str, Any]:
        return self.post("/v1/keys", {"scheme": scheme})  # type: ignore[no-any-return]

    def sign(self, key_id: str, message: bytes, **kw: Any) -> dict[str, Any]:
        return self.post(f"/v1/keys/{key_id}/sign", {"message": message.hex(), **kw})  # type: ignore[no-any-return]

    def sign_many(self, key_id: str, messages: list[bytes]) -> list[dict[str, Any]]:
        r = self.post(
            "/v1/sign", {"requests": [{"key_id": key_id, "message": m.hex()} for m in messages]}
        )
        return r["results"]  # type: ignore[no-any-return]


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., LocalCluster]]:
    made: list[LocalCluster] = []

    def make(n: int = 4, t: int = 2, name: str = "c") -> LocalCluster:
        c = LocalCluster(tmp_path / name, n, t)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def manifest(c: LocalCluster) -> dict[str, Any]:
    return json.loads(c.cd.manifest.read_text())  # type: ignore[no-any-return]
