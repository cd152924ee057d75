"""The gateway's HTTP layer behind a real uvicorn server (in a thread, over an in-memory cluster):
a chunked body refused while it streams, client certificates naming API clients over real TLS;
and schemathesis against a live multi-process cluster over mutual TLS, with no findings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.gateway.conftest import Cluster
from tholos.gateway.api import create_app
from tholos.gateway.identities import ApiClients, TlsClientProtocol, fingerprint_pem
from tholos.gateway.request_body import DEFAULT_LIMIT
from tholos.transport.pki import CertificateAuthority, write_private


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(tmp: Path, clients: ApiClients | None = None, **ssl_kw: Any) -> Iterator[str]:
    """A real uvicorn gateway over an in-memory cluster, in a thread; yields its base URL."""
    c = Cluster(tmp, 4, 2)
    port = _free_port()
    config = uvicorn.Config(
        create_app(lambda: c.gateway, clients),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        http=TlsClientProtocol,  # type: ignore[arg-type]
        lifespan="on",
        **ssl_kw,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("gateway did not start")
        threading.Event().wait(0.02)
    try:
        yield f"{'https' if ssl_kw else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


def test_chunked_body_refused_while_streaming(tmp_path: Path) -> None:
    """No Content-Length: the gateway answers 413 once the body passes its limit, while the
    client has sent only part of what it announced (it never waits for, or buffers, all)."""
    with serve(tmp_path) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(
                b"POST /v1/keys/0123456789abcdef0123456789abcdef/sign HTTP/1.1\r\n"
                b"Host: gw\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"0" * 65536
            sent = 0
            # 200 MB announced in spirit; send just past the limit, then stop and listen
            while sent <= DEFAULT_LIMIT:
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            reply = b""
            while b"\r\n\r\n" not in reply:
                got = s.recv(65536)
                if not got:
                    break
                reply += got
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 413"), head
            assert b"too_large" in body or b"content-length" in head.lower()


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca = CertificateAuthority.create()
    out = {"ca": tmp_path / "ca.pem"}
    out["ca"].write_bytes(ca.cert_pem)
    for name, server in (("server", True), ("reader", False), ("stranger", False)):
        cert = ca.issue(name, server=server, client=not server, hosts=("127.0.0.1",))
        out[name] = tmp_path / f"{name}.pem"
        out[name].write_bytes(cert.cert_pem)
        out[f"{name}.key"] = tmp_path / f"{name}.key"
        write_private(out[f"{name}.key"], cert.key_pem)
    return out


def test_client_certificates_over_tls(tmp_path: Path, pki: dict[str, Path]) -> None:
    fp = fingerprint_pem(pki["reader"].read_text())
    clients = ApiClients.from_config({"reader": {"fingerprint": fp, "role": "read-only"}}, {})
    ssl_kw = {
        "ssl_certfile": str(pki["server"]),
        "ssl_keyfile": str(pki["server.key"]),
        "ssl_ca_certs": str(pki["ca"]),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }
    with serve(tmp_path / "gw", clients, **ssl_kw) as url:

        def as_(name: str) -> httpx.Client:
            ctx = ssl.create_default_context(cafile=str(pki["ca"]))
            ctx.load_cert_chain(str(pki[name]), str(pki[f"{name}.key"]))
            return httpx.Client(base_url=url, verify=ctx, timeout=30)

        with as_("reader") as h:
            assert h.get("/v1/keys").status_code == 200
            r = h.post("/v1/keys", json={"scheme": "ed25519"})
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        with as_("stranger") as h:  # a certificate of the same CA, not an API client
            r = h.get("/v1/keys")
            assert r.status_code == 403 and r.json()["error"]["code"] == "unknown_client"


# schemathesis `all` checks, every one. Its response-time limit (ST112, 10 s unless told) is
# raised to the request timeout: a timed assertion on a box whose cores other work shares would
# fail a slow answer that is not a wrong one; a request that hangs still fails.
REQUEST_TIMEOUT = "60"


@pytest.mark.slow
def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    """Every operation of the OpenAPI document a live gateway serves, fuzzed over real mutual TLS
    with real node processes (tests/cluster harness); schemathesis exits 1 on any finding."""
    from tests.cluster.conftest import LocalCluster

    st = shutil.which("schemathesis", path=os.path.dirname(sys.executable))
    if st is None:
        pytest.fail("schemathesis is not installed (dev extra)")
    c = LocalCluster(tmp_path / "c", 4, 2)
    cfg = json.loads(c.cd.gateway_config.read_text())
    # bounded key creation (a 429 past it) keeps a whole-node repair short; no request rate limit
    cfg["api_clients"]["admin"]["limits"] = {
        "rate": None,
        "burst": 1,
        "keys_per_hour": 40,
        "max_count": 4,
    }
    c.configure_gateway(api_clients=cfg["api_clients"])
    tls = c.cd.client_tls
    try:
        c.start()
        proc = subprocess.run(
            [
                st,
                "--config-file",
                str(Path(__file__).with_name("schemathesis.toml")),
                "run",
                f"{c.url}/openapi.json",
                "--tls-verify",
                str(tls.ca),
                "--request-cert",
                str(tls.cert),
                "--request-cert-key",
                str(tls.key),
                "--checks",
                "all",
                "--max-response-time",
                REQUEST_TIMEOUT,
                "--max-examples",
                "10",
                "--request-timeout",
                REQUEST_TIMEOUT,
                "--phases",
                "examples,coverage,fuzzing",
                "--generation-deterministic",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,  # its example cache (.schemathesis/) stays out of the repository
            timeout=900,
            check=False,
        )
    finally:
        c.stop_all()
        c.close()
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
