"""A restarted node rejoins on its first health answer: the gateway's gRPC channel to a node that
went away must not sit in reconnect backoff once the node listens again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from tholos.cluster.layout import free_port
from tholos.gateway.nodes import NodeSet
from tholos.gateway.transport import GrpcNodeTransport
from tholos.rpc import node_pb2 as pb
from tholos.rpc import node_pb2_grpc
from tholos.transport.pki import CertificateAuthority
from tholos.transport.tls import TlsFiles, grpc_server_credentials

pytestmark = [pytest.mark.slow, pytest.mark.asyncio, pytest.mark.timeout(60)]


class InfoOnly(node_pb2_grpc.NodeServicer):  # type: ignore[misc]
    """Answers health probes (Info) and nothing else: all a probe needs."""

    async def Info(self, request: pb.InfoRequest, context: object) -> pb.InfoReply:
        return pb.InfoReply(node_id=1)


class SlowNode(InfoOnly):
    """A loaded node: a protocol round takes 1.5 s, a health probe 3 s (past its timeout)."""

    async def Info(self, request: pb.InfoRequest, context: object) -> pb.InfoReply:
        await asyncio.sleep(3.0)
        return pb.InfoReply(node_id=1)

    async def Protocol(self, request: pb.ProtocolRequest, context: object) -> pb.ProtocolReply:
        await asyncio.sleep(1.5)
        return pb.ProtocolReply(envelope=pb.Envelope(sender=1))


def _tls(d: Path) -> tuple[TlsFiles, TlsFiles]:
    ca = CertificateAuthority.create()
    (d / "ca.pem").write_bytes(ca.cert_pem)
    files = []
    for name, server in (("node-1", True), ("gateway-client", False)):
        c = ca.issue(name, server=server, client=not server, hosts=("127.0.0.1",))
        (d / f"{name}.pem").write_bytes(c.cert_pem)
        (d / f"{name}.key").write_bytes(c.key_pem)
        files.append(TlsFiles(d / "ca.pem", d / f"{name}.pem", d / f"{name}.key"))
    return files[0], files[1]


async def _serve(
    address: str, tls: TlsFiles, servicer: node_pb2_grpc.NodeServicer | None = None
) -> grpc.aio.Server:
    server = grpc.aio.server()
    node_pb2_grpc.add_NodeServicer_to_server(servicer or InfoOnly(), server)  # type: ignore[no-untyped-call]
    assert server.add_secure_port(address, grpc_server_credentials(tls)) != 0
    await server.start()
    return server


async def test_restarted_node_answers_the_first_probe_after_it_listens(tmp_path: Path) -> None:
    server_tls, client_tls = _tls(tmp_path)
    address = f"127.0.0.1:{free_port()}"  # the same port across the node's restart
    server = await _serve(address, server_tls)
    ns = NodeSet({1: GrpcNodeTransport(1, address, client_tls)}, rpc_timeout=2.0)
    try:
        assert await ns.probe(1), ns.nodes[1].down_reason
        await server.stop(None)
        for _ in range(12):  # the node stays away long enough for gRPC's backoff to grow
            assert not await ns.probe(1)
            await asyncio.sleep(0.25)
        server = await _serve(address, server_tls)
        assert await ns.probe(1), ns.nodes[1].down_reason
        assert next(n for n in ns.status() if n["node_id"] == 1)["state"] == "up"
    finally:
        await ns.close()
        await server.stop(None)


async def test_a_timed_out_probe_does_not_cancel_calls_in_flight(tmp_path: Path) -> None:
    """A probe that times out opens a new channel; the rounds running on the old one finish
    (closing it at once cancelled every in-flight call: seen as CancelledError from all nodes
    when a loaded gateway's probes timed out mid ECDSA presigning)."""
    server_tls, client_tls = _tls(tmp_path)
    address = f"127.0.0.1:{free_port()}"
    server = await _serve(address, server_tls, SlowNode())
    transport = GrpcNodeTransport(1, address, client_tls)
    ns = NodeSet({1: transport}, rpc_timeout=0.5)
    try:
        call = asyncio.create_task(transport.protocol(pb.ProtocolRequest(protocol="x"), 10.0))
        await asyncio.sleep(0.2)
        assert not await ns.probe(1)  # timed out: the transport reconnects
        reply = await call
        assert reply.envelope.sender == 1
    finally:
        await ns.close()
        await server.stop(None)
