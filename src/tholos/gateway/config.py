"""Gateway configuration (JSON file written by `tholos cluster init`, or by an operator)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tholos.attestation.roots import VendorRoots
from tholos.gateway.broadcast_service import BroadcastSettings
from tholos.gateway.identities import ApiClients
from tholos.gateway.monitor_service import MonitorSettings
from tholos.transport.e2e import PeerIdentity
from tholos.transport.tls import TlsFiles


@dataclass(frozen=True)
class GatewayConfig:
    host: str
    port: int
    threshold: int
    nodes: dict[int, str]  # node id -> host:port
    roster: dict[int, PeerIdentity]
    node_tls: TlsFiles  # client certificate presented to nodes
    api_tls: TlsFiles | None  # server certificate of the REST API (None: plain HTTP, tests only)
    db: Path  # the SQLite file (and beside it the audit chain), when `store` is None
    store: str | None = None  # "postgresql://…": a database several gateways share (HA)
    signing_lease: float = 30.0  # shared store: how long a gateway's claim to sign a request holds
    rpc_timeout: float = 5.0
    dkg_timeout: float = 30.0
    quarantine_seconds: float = 60.0
    pool_batch: int = 2048
    recommit_seconds: float | None = 5.0  # re-send missed refresh commits; None: only by repair
    api_clients: ApiClients | None = None  # None: no client certificate is an API client
    metrics_port: int | None = None  # plain-HTTP GET /metrics for Prometheus; None: off
    metrics_host: str = "127.0.0.1"
    attestation_roots: VendorRoots = field(default_factory=VendorRoots)  # "attestation": {...}
    broadcast: BroadcastSettings | None = None  # the broadcaster thread; None: none here
    monitor: MonitorSettings | None = None  # deposit monitoring and webhooks; None: off

    @property
    def url(self) -> str:
        return f"{'https' if self.api_tls else 'http'}://{self.host}:{self.port}"

    @classmethod
    def load(cls, path: Path) -> GatewayConfig:
        d: dict[str, Any] = json.loads(path.read_text())
        base = path.parent

        def p(v: str) -> Path:
            return (base / v).resolve()

        def tls(t: dict[str, str] | None) -> TlsFiles | None:
            return None if t is None else TlsFiles(p(t["ca"]), p(t["cert"]), p(t["key"]))

        node_tls = tls(d["node_tls"])
        assert node_tls is not None
        return cls(
            host=str(d.get("host", "127.0.0.1")),
            port=int(d["port"]),
            threshold=int(d["threshold"]),
            nodes={int(k): str(v) for k, v in d["nodes"].items()},
            roster={int(r["node_id"]): PeerIdentity.from_dict(r) for r in d["roster"]},
            node_tls=node_tls,
            api_tls=tls(d.get("api_tls")),
            db=p(d.get("db", "gateway.db")),
            store=_store_url(d.get("store")),
            signing_lease=float(d.get("signing_lease_seconds", 30.0)),
            rpc_timeout=float(d.get("rpc_timeout", 5.0)),
            dkg_timeout=float(d.get("dkg_timeout", 30.0)),
            quarantine_seconds=float(d.get("quarantine_seconds", 60.0)),
            pool_batch=int(d.get("pool_batch", 2048)),
            recommit_seconds=None
            if d.get("recommit_seconds", 5.0) is None
            else float(d.get("recommit_seconds", 5.0)),
            # "api_clients": {name: {"fingerprint": sha256 hex, "role", "limits"?: {...}}}
            # "api_limits": the default limits of every client (gateway/identities.py)
            api_clients=ApiClients.from_config(
                d["api_clients"] if "api_clients" in d else _legacy_clients(base),
                d.get("api_limits", {}),
            ),
            metrics_port=None if d.get("metrics_port") is None else int(d["metrics_port"]),
            metrics_host=str(d.get("metrics_host", "127.0.0.1")),
            attestation_roots=VendorRoots.from_config(d.get("attestation") or {}, base),
            broadcast=None
            if d.get("broadcast") is None
            else BroadcastSettings.from_config(d["broadcast"]),
            monitor=None
            if d.get("monitor") is None
            else MonitorSettings.from_config(d["monitor"], base),
        )


def _store_url(value: Any) -> str | None:
    """`store`: absent/null (SQLite, `db`) or a PostgreSQL URL. Put no password in it: libpq
    reads PGPASSWORD or ~/.pgpass."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("store must be a postgresql://… URL (or absent: SQLite in `db`)")
    return value


def _legacy_clients(base: Path) -> dict[str, Any]:
    """A cluster directory from before named API clients: its CLI certificate (D/client) is the
    one admin, so `make run` keeps working on it; no other certificate is an API client."""
    from tholos.gateway.identities import UNLIMITED, fingerprint_pem

    pem = base.parent / "client" / "client.pem"
    if not pem.exists():
        return {}
    fp = fingerprint_pem(pem.read_text())
    return {"admin": {"fingerprint": fp, "role": "admin", "limits": UNLIMITED.to_dict()}}
