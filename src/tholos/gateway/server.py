"""`tholos gateway --config FILE`: the REST API over HTTPS (client certificates required)."""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys
from pathlib import Path

import uvicorn

from tholos.gateway.api import create_app
from tholos.gateway.config import GatewayConfig
from tholos.gateway.identities import ApiClients
from tholos.gateway.service import Gateway
from tholos.gateway.store import GatewayStore
from tholos.gateway.transport import GrpcNodeTransport, NodeTransport
from tholos.gateway.vault_http import VaultHttpProtocol
from tholos.observability import logs

log = logging.getLogger("tholos.gateway")


def build_gateway(cfg: GatewayConfig) -> Gateway:
    transports: dict[int, NodeTransport] = {
        i: GrpcNodeTransport(i, addr, cfg.node_tls) for i, addr in cfg.nodes.items()
    }
    gw = Gateway(
        transports,
        cfg.roster,
        GatewayStore(cfg.store or cfg.db),
        cfg.threshold,
        rpc_timeout=cfg.rpc_timeout,
        dkg_timeout=cfg.dkg_timeout,
        quarantine_seconds=cfg.quarantine_seconds,
        pool_batch=cfg.pool_batch,
        recommit_seconds=cfg.recommit_seconds,
    )
    from tholos.gateway.requests import attach

    governed = attach(gw, cfg.db.parent, cfg.signing_lease)  # governed signing, audit chain
    from tholos.gateway import attestation

    attestation.attach(gw, cfg.attestation_roots.verifiers(), governed.audit)
    from tholos.gateway import chain_nonces

    ethereum = cfg.broadcast.ethereum_rpc if cfg.broadcast else ()
    if cfg.monitor is not None and cfg.monitor.ethereum_rpc:
        ethereum = (*ethereum, cfg.monitor.ethereum_rpc)
    chain_nonces.attach(gw, ethereum)  # nonce floors from the chain, when it has a connector
    if cfg.broadcast is not None:
        from tholos.gateway import broadcast_service

        broadcast_service.start(cfg.db, cfg.broadcast)  # daemon thread: ends with the process
    return gw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tholos gateway", description="Run the tholos gateway.")
    ap.add_argument("--config", required=True, type=Path)
    args = ap.parse_args(argv)
    os.umask(0o077)  # the database, its -wal/-shm and the audit log: owner only
    try:
        logs.configure("gateway")
    except ValueError as exc:
        print(f"tholos gateway: {exc}", file=sys.stderr)
        return 2
    try:
        cfg = GatewayConfig.load(args.config)
    except (OSError, ValueError, KeyError) as exc:
        print(f"tholos gateway: bad config: {exc}", file=sys.stderr)
        return 2
    if cfg.api_tls is None:
        log.warning("plain HTTP, no client certificates: every caller is an unlimited admin")
    clients = None if cfg.api_tls is None else (cfg.api_clients or ApiClients({}))
    if clients is not None and not clients.by_fingerprint:
        log.warning("no api_clients in %s: every API call will be refused", args.config)
    listen = None if cfg.metrics_port is None else (cfg.metrics_host, cfg.metrics_port)
    app = create_app(lambda: build_gateway(cfg), clients, listen)
    if cfg.monitor is not None:
        from tholos.gateway import monitor_service, monitoring_api
        from tholos.gateway.webhook_key import WebhookKeyError

        try:
            monitor, _stop = monitor_service.start(cfg.db, cfg.monitor)  # daemon thread
        except WebhookKeyError as exc:
            print(f"tholos gateway: webhook key: {exc}", file=sys.stderr)
            return 2
        monitoring_api.attach(app, monitor)
    kw: dict[str, object] = {}
    if cfg.api_tls is not None:
        kw = {
            "ssl_certfile": str(cfg.api_tls.cert),
            "ssl_keyfile": str(cfg.api_tls.key),
            "ssl_ca_certs": str(cfg.api_tls.ca),
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
        }
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    prof_path = os.environ.get("THOLOS_PROFILE")
    if prof_path:  # development aid: profile the whole gateway process, dumped at exit
        import cProfile
        import threading
        import time

        prof = cProfile.Profile()
        prof.enable()

        def dump() -> None:  # uvicorn re-raises SIGTERM at exit: dump periodically instead
            while True:
                time.sleep(3)
                prof.dump_stats(prof_path)

        threading.Thread(target=dump, daemon=True).start()
    uvicorn.run(
        app,
        host=cfg.host,
        port=cfg.port,
        log_level="warning",
        access_log=False,
        loop=loop,
        http=VaultHttpProtocol,  # httptools, the client certificate in each request, Vault's LIST
        timeout_graceful_shutdown=2,
        **kw,  # type: ignore[arg-type]
    )
    return 0
