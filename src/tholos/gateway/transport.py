"""How the gateway reaches nodes: gRPC over mutual TLS, or in memory (unit tests).

Errors are normalised to two exceptions: `NodeUnavailable` (timeout, connection refused, crash:
try other nodes) and `NodeRefused` (the node answered with a refusal, possibly naming culprits).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

import grpc

from tholos.observability import logs
from tholos.rpc import node_pb2 as pb
from tholos.rpc import node_pb2_grpc
from tholos.transport.tls import TlsFiles, grpc_channel_credentials


class NodeUnavailable(Exception):
    def __init__(self, node_id: int, reason: str) -> None:
        self.node_id = node_id
        super().__init__(f"node {node_id} unavailable: {reason}")


class NodeRefused(Exception):
    def __init__(self, node_id: int, reason: str, culprits: tuple[int, ...] = ()) -> None:
        self.node_id = node_id
        self.reason = reason
        self.culprits = culprits
        super().__init__(f"node {node_id} refused: {reason}")


class NodeTransport(Protocol):
    node_id: int

    async def info(self, timeout: float) -> pb.InfoReply: ...

    async def commitments(
        self, req: pb.CommitmentsRequest, timeout: float
    ) -> pb.CommitmentsReply: ...

    async def sign_batch(self, req: pb.SignBatchRequest, timeout: float) -> pb.SignBatchReply: ...

    async def protocol(self, req: pb.ProtocolRequest, timeout: float) -> pb.ProtocolReply: ...

    async def governance(self, req: pb.GovernanceRequest, timeout: float) -> pb.GovernanceReply: ...

    async def close(self) -> None: ...


GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    ("grpc.ssl_target_name_override", ""),
]


OLD_CHANNEL_GRACE_S = 120.0  # longer than any RPC timeout the gateway sets


class GrpcNodeTransport:
    def __init__(self, node_id: int, address: str, tls: TlsFiles) -> None:
        self.node_id = node_id
        self.address = address
        self.tls = tls
        self._closing: set[asyncio.Task[None]] = set()
        self._old_channels: set[grpc.aio.Channel] = set()
        self._connect()

    def _connect(self) -> None:
        opts = [o for o in GRPC_OPTIONS if o[0] != "grpc.ssl_target_name_override"]
        opts.append(("grpc.ssl_target_name_override", f"node-{self.node_id}"))
        creds = grpc_channel_credentials(self.tls)
        self.channel = grpc.aio.secure_channel(self.address, creds, options=opts)
        self.stub = node_pb2_grpc.NodeStub(self.channel)  # type: ignore[no-untyped-call]

    async def _reconnect(self) -> None:
        """A fresh channel: the old one, after failing to connect, waits out gRPC's reconnect
        backoff (up to seconds) before it tries again, so a restarted node would stay "down"
        that long after it listens. Health probes call this after a failure."""
        old = self.channel
        self._connect()
        # Calls still in flight on the old channel (a slow protocol round on a loaded host whose
        # health probe timed out) finish there; closing it at once would cancel them all.
        self._old_channels.add(old)

        async def close_old() -> None:
            await old.close(grace=OLD_CHANNEL_GRACE_S)
            self._old_channels.discard(old)

        closing = asyncio.create_task(close_old())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def _call(self, method: Any, req: Any, timeout: float) -> Any:
        rid = logs.current_request_id()  # the REST request this call serves (gateway/observe.py)
        # a Metadata object, not a tuple: grpc checks a tuple against typing.Sequence (an ABC
        # subclass check) on every call
        meta = None if rid is None else grpc.aio.Metadata((logs.REQUEST_ID_HEADER, rid))
        try:
            return await method(req, timeout=timeout, metadata=meta)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.FAILED_PRECONDITION:
                try:
                    d = json.loads(exc.details() or "{}")
                except ValueError:
                    d = {"error": exc.details()}
                raise NodeRefused(
                    self.node_id, str(d.get("error")), tuple(d.get("culprits", ()))
                ) from None
            raise NodeUnavailable(self.node_id, f"{code.name}: {exc.details()}") from None
        except asyncio.CancelledError:
            raise

    async def info(self, timeout: float) -> pb.InfoReply:
        """The node's health answer; after a failure the next probe starts a new connection."""
        try:
            r: pb.InfoReply = await self._call(self.stub.Info, pb.InfoRequest(), timeout)
        except NodeUnavailable:
            await self._reconnect()
            raise
        return r

    async def commitments(self, req: pb.CommitmentsRequest, timeout: float) -> pb.CommitmentsReply:
        r: pb.CommitmentsReply = await self._call(self.stub.Commitments, req, timeout)
        return r

    async def sign_batch(self, req: pb.SignBatchRequest, timeout: float) -> pb.SignBatchReply:
        r: pb.SignBatchReply = await self._call(self.stub.SignBatch, req, timeout)
        return r

    async def protocol(self, req: pb.ProtocolRequest, timeout: float) -> pb.ProtocolReply:
        r: pb.ProtocolReply = await self._call(self.stub.Protocol, req, timeout)
        return r

    async def governance(self, req: pb.GovernanceRequest, timeout: float) -> pb.GovernanceReply:
        r: pb.GovernanceReply = await self._call(self.stub.Governance, req, timeout)
        return r

    async def close(self) -> None:
        for task in list(self._closing):
            task.cancel()
        for old in list(self._old_channels):
            await old.close(grace=None)
        self._old_channels.clear()
        await self.channel.close()


class InMemoryNodeTransport:
    """Calls a NodeService in the same process (unit tests). `down` simulates a dead node."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.node_id = int(service.identity.node_id)
        self.down = False

    async def _call(self, fn: Any, req: Any) -> Any:
        from tholos.transport.refusal import RequestRefused

        await asyncio.sleep(0)
        if self.down:
            raise NodeUnavailable(self.node_id, "down")
        try:
            return fn(req)
        except RequestRefused as exc:
            raise NodeRefused(self.node_id, str(exc), exc.culprits) from None

    async def info(self, timeout: float) -> pb.InfoReply:
        r: pb.InfoReply = await self._call(self.service.info, pb.InfoRequest())
        return r

    async def commitments(self, req: pb.CommitmentsRequest, timeout: float) -> pb.CommitmentsReply:
        r: pb.CommitmentsReply = await self._call(self.service.commitments, req)
        return r

    async def sign_batch(self, req: pb.SignBatchRequest, timeout: float) -> pb.SignBatchReply:
        r: pb.SignBatchReply = await self._call(self.service.sign_batch, req)
        return r

    async def protocol(self, req: pb.ProtocolRequest, timeout: float) -> pb.ProtocolReply:
        r: pb.ProtocolReply = await self._call(self.service.protocol, req)
        return r

    async def governance(self, req: pb.GovernanceRequest, timeout: float) -> pb.GovernanceReply:
        r: pb.GovernanceReply = await self._call(self.service.governance_op, req)
        return r

    async def close(self) -> None:
        return None
