"""`tholos node --config FILE`: unseal, then serve the Node gRPC service over mutual TLS."""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc

from tholos.node.barrier import (
    Barrier,
    SealError,
    Unsealer,
    WrongPassphrase,
    create_master,
    is_sealed_file,
    open_file,
    open_master,
    seal_file,
)
from tholos.node.config import NodeConfig
from tholos.node.hooks import NO_HOOKS, NodeHooks
from tholos.node.metrics import node_registry
from tholos.node.service import NodeService, RequestRefused
from tholos.node.store import NodeStore, is_storage_full
from tholos.node.vault import KeyVault
from tholos.observability import logs
from tholos.observability import metrics as m
from tholos.rpc import node_pb2_grpc
from tholos.transport.e2e import Identity

log = logging.getLogger("tholos.node")
rpc_log = logs.get_logger("tholos.node.rpc")
_rpc_std = logging.getLogger("tholos.node.rpc")
FAULTS_MODULE = "tholos.testing.faults"  # test-only; imported only for `--fault`
EXIT_WRONG_PASSPHRASE = 3
EXIT_CONFIG = 2

Req = TypeVar("Req")
Rep = TypeVar("Rep")


class StartupError(Exception):
    def __init__(self, message: str, code: int) -> None:
        self.code = code
        super().__init__(message)


def passphrase_from_env() -> bytes | None:
    """THOLOS_PASSPHRASE, or the file THOLOS_PASSPHRASE_FILE names (e.g. a systemd credential,
    `%d/passphrase`), without its trailing newline; None if neither is set."""
    passphrase = os.environ.get("THOLOS_PASSPHRASE")
    if passphrase is not None:
        return passphrase.encode()
    path = os.environ.get("THOLOS_PASSPHRASE_FILE")
    return None if not path else Path(path).read_bytes().rstrip(b"\r\n")


def make_unsealer(cfg: NodeConfig) -> Unsealer:
    passphrase = passphrase_from_env()
    return Unsealer(
        passphrase=(
            passphrase
            if passphrase is not None
            else cfg.passphrase_file.read_bytes().rstrip(b"\r\n")
            if cfg.passphrase_file
            else None
        ),
        key_file=cfg.key_file,
    )


def unseal(cfg: NodeConfig, store: NodeStore) -> Barrier:
    unsealer = make_unsealer(cfg)
    record = store.get_meta("master")
    try:
        if record is None:
            record, master = create_master(unsealer)
            store.put_meta("master", record)
            log.info("node %d: created a new master key", cfg.node_id)
        else:
            master = open_master(unsealer, record)
    except WrongPassphrase as exc:
        raise StartupError(str(exc), EXIT_WRONG_PASSPHRASE) from None
    return Barrier(master)


def open_secret(cfg: NodeConfig, path: Path, label: str) -> bytes:
    """A node secret file, unsealed in memory; a plaintext file (older layout, or an operator's
    copy) is sealed in place first under the passphrase or key file."""
    unsealer = make_unsealer(cfg)
    try:
        if is_sealed_file(path):
            return open_file(unsealer, path, label)
        plain = path.read_bytes()
        seal_file(unsealer, path, plain, label)
        log.warning("node %d: sealed %s in place (it was a plaintext file)", cfg.node_id, path)
        return plain
    except (WrongPassphrase, SealError) as exc:
        raise StartupError(str(exc), EXIT_WRONG_PASSPHRASE) from None


def load_identity(cfg: NodeConfig) -> Identity:
    secret = bytes.fromhex(open_secret(cfg, cfg.identity_file, "identity").decode().strip())
    ident = Identity(cfg.node_id, secret, dict(cfg.roster))
    mine = cfg.roster.get(cfg.node_id)
    if mine is None or mine != ident.public:
        raise StartupError("identity key does not match this node's roster entry", EXIT_CONFIG)
    return ident


def load_fault(name: str) -> NodeHooks:
    """The test-only hooks named by `--fault`: refused unless THOLOS_ALLOW_FAULTS=1."""
    if os.environ.get("THOLOS_ALLOW_FAULTS") != "1":
        raise StartupError("--fault is for tests only: set THOLOS_ALLOW_FAULTS=1", EXIT_CONFIG)
    try:
        hooks: NodeHooks = importlib.import_module(FAULTS_MODULE).fault(name)
    except ValueError as exc:
        raise StartupError(f"--fault: {exc}", EXIT_CONFIG) from None
    return hooks


def build_service(
    cfg: NodeConfig, hooks: NodeHooks = NO_HOOKS, config_path: Path | None = None
) -> NodeService:
    store = NodeStore(cfg.db)
    barrier = unseal(cfg, store)
    identity = load_identity(cfg)
    vault = KeyVault(store, barrier, cfg.node_id, cfg.share_cache)
    vault.hooks = hooks
    if cfg.signer:
        vault.signer = start_signer(cfg, config_path)

    def scanned(broken: set[str]) -> None:
        if broken:
            log.error(
                "node %d cannot open the sealed share of key(s) %s: run `tholos keys repair`",
                cfg.node_id,
                ", ".join(sorted(broken)),
            )
        log.info("node %d: start-up share scan done", cfg.node_id)

    vault.scan_in_background(scanned)
    return NodeService(identity, store, vault, cfg.nonce_pool_max, cfg.min_threshold)


def start_signer(cfg: NodeConfig, config_path: Path | None) -> Any:
    """The node's signer process (node/signer/), started from the same config file."""
    from tholos.node.signer import client

    if config_path is None:
        raise StartupError("a node with `signer` on needs its config file path", EXIT_CONFIG)
    try:
        signer = client.launch(config_path)
    except client.SignerRefused as exc:
        raise StartupError(str(exc), EXIT_CONFIG) from None
    log.info("node %d: shares are opened by its signer process (%s)", cfg.node_id, signer.path)
    return signer


class Servicer(node_pb2_grpc.NodeServicer):
    def __init__(self, service: NodeService) -> None:
        self.s = service

    async def _call(self, fn: Callable[[Any], Any], req: Any, ctx: grpc.aio.ServicerContext) -> Any:
        """Run one RPC handler: counted and timed by method and outcome, logged with the
        gateway's request id (gRPC metadata `x-request-id`)."""
        method = fn.__name__
        started = time.perf_counter()
        outcome = "error"
        with logs.bind_request_id(_request_id(ctx)):
            try:
                await self.s.vault.hooks.before_rpc(method)
                try:
                    reply = fn(req)
                    outcome = "ok"
                    _count_shares(method, reply)
                    return reply
                except RequestRefused as exc:
                    outcome = "refused"
                    await ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, exc.details())
                except Exception as exc:
                    if is_storage_full(exc):  # the transaction rolled back: nothing was written
                        outcome = "storage_full"
                        log.warning("disk full: %s refused", method)
                        await ctx.abort(
                            grpc.StatusCode.RESOURCE_EXHAUSTED,
                            RequestRefused("storage full on this node").details(),
                        )
                    log.exception("internal error")
                    await ctx.abort(
                        grpc.StatusCode.INTERNAL,
                        RequestRefused(f"internal error: {type(exc).__name__}").details(),
                    )
            finally:
                seconds = time.perf_counter() - started
                count, latency = _rpc_series(method, outcome)
                count.inc()
                latency.observe(seconds)
                # one line per RPC: DEBUG when it went well (the audit chain records what was
                # signed; `THOLOS_LOG=INFO,tholos.node.rpc=DEBUG` shows every call), INFO else
                level = logging.DEBUG if outcome == "ok" else logging.INFO
                if _rpc_std.isEnabledFor(level):
                    rpc_log.log(
                        level, "rpc", method=method, outcome=outcome, seconds=round(seconds, 6)
                    )

    async def Info(self, request: Any, context: Any) -> Any:
        return self.s.info(request)

    async def Commitments(self, request: Any, context: Any) -> Any:
        return await self._call(self.s.commitments, request, context)

    async def SignBatch(self, request: Any, context: Any) -> Any:
        return await self._call(self.s.sign_batch, request, context)

    async def Protocol(self, request: Any, context: Any) -> Any:
        return await self._call(self.s.protocol, request, context)

    async def Governance(self, request: Any, context: Any) -> Any:
        return await self._call(self.s.governance_op, request, context)


@functools.cache
def _rpc_series(method: str, outcome: str) -> tuple[Any, Any]:
    """The counter and histogram series of (method, outcome), looked up once."""
    return m.NODE_RPCS.labels(method, outcome), m.NODE_LATENCY.labels(method, outcome)


def _request_id(ctx: grpc.aio.ServicerContext) -> str | None:
    for key, value in ctx.invocation_metadata() or ():
        if key == logs.REQUEST_ID_HEADER and isinstance(value, str):
            return logs.valid_request_id(value)
    return None


def _count_shares(method: str, reply: Any) -> None:
    if method == "sign_batch":
        for r in reply.results:
            m.NODE_SHARES.labels("refused" if r.error else "signed").inc()


GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


async def serve(cfg: NodeConfig, service: NodeService) -> None:
    server = grpc.aio.server(options=GRPC_OPTIONS)
    node_pb2_grpc.add_NodeServicer_to_server(Servicer(service), server)  # type: ignore[no-untyped-call]
    ca, cert = cfg.tls.ca.read_bytes(), cfg.tls.cert.read_bytes()
    creds = grpc.ssl_server_credentials(
        [(open_secret(cfg, cfg.tls.key, "tls-key"), cert)],
        root_certificates=ca,
        require_client_auth=True,
    )
    port = server.add_secure_port(cfg.listen, creds)
    if port == 0:
        raise StartupError(f"cannot listen on {cfg.listen}", EXIT_CONFIG)
    await server.start()
    log.info("node %d listening on %s (mutual TLS)", cfg.node_id, cfg.listen)
    scraper = None
    if cfg.metrics_port is not None:
        scraper = await m.serve(node_registry(service), cfg.metrics_port, cfg.metrics_host)
        log.info(
            "node %d metrics on http://%s:%d/metrics",
            cfg.node_id,
            cfg.metrics_host,
            cfg.metrics_port,
        )
    print(f"tholos node {cfg.node_id} ready on {cfg.listen}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if scraper is not None:
        scraper.close()
    await server.stop(grace=1.0)
    if service.vault.signer is not None:
        from tholos.node.signer import client

        client.stop(service.vault.signer)
    service.store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tholos node", description="Run a tholos node.")
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument(
        "--fault", default="", metavar="NAME", help="tests only (THOLOS_ALLOW_FAULTS=1)"
    )
    args = ap.parse_args(argv)
    os.umask(0o077)  # the database, its -wal/-shm and the audit log: owner only
    try:
        logs.configure("node")
    except ValueError as exc:
        print(f"tholos node: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    try:
        hooks = load_fault(args.fault) if args.fault else NO_HOOKS
        cfg = NodeConfig.load(args.config)
        logs.bind_node(cfg.node_id)
        service = build_service(cfg, hooks, args.config)
        from tholos.node import governance
        from tholos.node.wallets import wallet_resolver

        service.governance = governance.load(
            args.config, service.identity, dict(cfg.roster), wallet_resolver(service.vault)
        )
        from tholos.node import attestation

        service.attestation = attestation.build(
            args.config,
            service.identity,
            hooks,
            attestation.pins_of(service.governance),
            service.governance.audit,
        )
        if service.governance.governed:  # the minimum threshold the admins last set
            from tholos.node import committee_governance

            committee_governance.for_service(service)
        if args.fault:
            log.warning("node %d running with TEST FAULT %r", cfg.node_id, args.fault)
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        asyncio.run(serve(cfg, service))
    except StartupError as exc:
        print(f"tholos node: {exc}", file=sys.stderr, flush=True)
        return exc.code
    except (OSError, ValueError, KeyError) as exc:
        print(f"tholos node: cannot start: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    return 0
