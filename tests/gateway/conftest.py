"""An in-memory cluster: real NodeServices (SQLite, barrier, vault) behind in-memory transports."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio

from tholos.gateway.api import create_app
from tholos.gateway.service import Gateway
from tholos.gateway.store import GatewayStore
from tholos.gateway.transport import InMemoryNodeTransport
from tholos.node.barrier import Barrier
from tholos.node.governance import NodeGovernance, Settings
from tholos.node.service import NodeService
from tholos.node.store import NodeStore
from tholos.node.vault import KeyVault
from tholos.node.wallets import wallet_resolver
from tholos.transport.e2e import Identity, generate_identity_secret


class WireTransport(InMemoryNodeTransport):
    """The in-memory transport, but every request and reply crosses as bytes (serialised and
    parsed again, as over gRPC): a field the protobuf cannot carry, or a message mutated after it
    was sent, shows up here instead of only in the multi-process tests."""

    async def _call(self, fn: Any, req: Any) -> Any:
        sent = type(req).FromString(req.SerializeToString())
        reply = await super()._call(fn, sent)
        return type(reply).FromString(reply.SerializeToString())


def make_nodes(tmp: Path, n: int) -> dict[int, NodeService]:
    secrets = {i: generate_identity_secret() for i in range(1, n + 1)}
    roster = {i: Identity(i, s).public for i, s in secrets.items()}
    out = {}
    for i, s in secrets.items():
        store = NodeStore(tmp / f"node-{i}.db")
        vault = KeyVault(store, Barrier(os.urandom(32)), i)
        out[i] = NodeService(Identity(i, s, dict(roster)), store, vault, 100_000)
    return out


class Cluster:
    def __init__(self, tmp: Path, n: int, t: int, store: str | None = None) -> None:
        self.services = make_nodes(tmp, n)
        self.transports = {i: WireTransport(s) for i, s in self.services.items()}
        roster = {i: s.identity.public for i, s in self.services.items()}
        self.gateway = Gateway(
            dict(self.transports),
            roster,
            GatewayStore(store or tmp / "gw.db"),  # store: a postgresql://… URL
            t,
            rpc_timeout=2.0,
            pool_batch=64,
            recommit_seconds=None,  # tests that leave a commit missing turn it on themselves
        )
        self.closed = False
        BUILT.append(self)

    def close(self) -> None:
        """Close the gateway's and the nodes' databases (after the gateway stopped): three files
        per SQLite database, five databases a cluster, that a long test process would keep open."""
        if self.closed:
            return
        self.closed = True
        self.gateway.store.close()
        for s in self.services.values():
            s.store.close()


#: every Cluster built in this process; tests/conftest.py closes those a test built, after it
BUILT: list[Cluster] = []


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, 4, 2)
    await c.gateway.start()
    yield c
    await c.gateway.stop()


@contextlib.asynccontextmanager
async def governed_cluster(
    tmp: Path, genesis: Any, cluster_id: str, n: int = 4, t: int = 2
) -> AsyncIterator[Cluster]:
    """An in-memory cluster whose nodes each enforce `genesis` (a signed genesis document)."""
    c = Cluster(tmp, n, t)
    path = tmp / "genesis.json"
    path.write_text(genesis.model_dump_json())
    settings = Settings("governed", cluster_id, path, genesis.document.digest(), n=n, t=t)
    roster = {i: s.identity.public for i, s in c.services.items()}
    for i, s in c.services.items():
        (tmp / f"gov-{i}").mkdir()
        s.governance = NodeGovernance(
            settings, tmp / f"gov-{i}", s.identity, roster, wallets=wallet_resolver(s.vault)
        )
    await c.gateway.start()
    try:
        yield c
    finally:
        await c.gateway.stop()
        for s in c.services.values():
            assert s.governance is not None
            s.governance.close()


Api = tuple[httpx.AsyncClient, Cluster]


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """The REST API of an in-memory 4-node cluster (t=2), through the ASGI app itself."""
    c = Cluster(tmp_path, 4, 2)
    app = create_app(lambda: c.gateway)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        yield client, c


def expect_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The error envelope of `r`, checked to carry `status` and `code` (and a message)."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code and body["error"]["message"], body
    return dict(body["error"])
