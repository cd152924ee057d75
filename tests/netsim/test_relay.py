"""The WAN relay: bytes arrive intact and in order, never before their delay, and a cut stalls
the link until it is restored. Lower bounds only: how much later a chunk arrives is the machine's
business, not a test's."""

from __future__ import annotations

import asyncio
import json
import socket
import socketserver
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tholos.netsim.relay import LinkProfile, Relay
from tholos.netsim.sites import RelayFleet, WanProfile, route_gateway_through


async def _echo_server() -> asyncio.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, "127.0.0.1", 0)


async def _relay(profile: LinkProfile) -> AsyncIterator[tuple[Relay, asyncio.Server]]:
    server = await _echo_server()
    relay = await Relay(server.sockets[0].getsockname()[:2], profile, seed=7).start()
    try:
        yield relay, server
    finally:
        await relay.stop()
        server.close()


async def _round_trip(relay: Relay, payload: bytes) -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection(*relay.address)
    start = time.monotonic()
    writer.write(payload)
    await writer.drain()
    got = await reader.readexactly(len(payload))
    elapsed = time.monotonic() - start
    writer.close()
    return got, elapsed


def test_bytes_arrive_intact_in_order_and_not_before_the_delay() -> None:
    async def run() -> None:
        async for relay, _ in _relay(LinkProfile(delay_ms=15, jitter_ms=10)):
            payload = bytes(range(256)) * 2000  # 512 KB: many chunks, each with its own jitter
            got, elapsed = await _round_trip(relay, payload)
            assert got == payload
            assert elapsed >= 2 * 0.015  # one delay each way, at least
            assert relay.bytes_forwarded == 2 * len(payload)

    asyncio.run(run())


def test_cut_stalls_and_restore_reconnects() -> None:
    async def run() -> None:
        async for relay, _ in _relay(LinkProfile()):
            relay.cut()
            reader, writer = await asyncio.open_connection(*relay.address)
            writer.write(b"ping")
            await writer.drain()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.read(4), timeout=0.3)  # black hole: no answer
            relay.restore()
            assert await reader.read(4) == b""  # the stalled connection was closed
            got, _ = await _round_trip(relay, b"pong")
            assert got == b"pong"
            writer.close()

    asyncio.run(run())


def test_cut_holds_an_open_connection_until_restore() -> None:
    async def run() -> None:
        async for relay, _ in _relay(LinkProfile()):
            reader, writer = await asyncio.open_connection(*relay.address)
            writer.write(b"a")
            assert await reader.readexactly(1) == b"a"
            relay.cut()
            writer.write(b"b")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.readexactly(1), timeout=0.3)
            relay.restore()
            writer.close()

    asyncio.run(run())


def test_target_down_closes_the_client() -> None:
    async def run() -> None:
        server = await _echo_server()
        target = server.sockets[0].getsockname()[:2]
        server.close()
        await server.wait_closed()
        relay = await Relay(target).start()
        reader, writer = await asyncio.open_connection(*relay.address)
        assert await asyncio.wait_for(reader.read(1), timeout=5) == b""
        writer.close()
        await relay.stop()

    asyncio.run(run())


def test_wan_profile_places_nodes_in_sites() -> None:
    wan = WanProfile()
    assert [wan.site_of(i) for i in range(1, 8)] == [0, 1, 2, 0, 1, 2, 0]
    assert wan.link(1).delay_ms == 0.5 and wan.link(2).delay_ms == 10.0
    assert WanProfile(gateway_site=1).link(2).delay_ms == 0.5


def test_fleet_cuts_a_site_and_routes_the_gateway(tmp_path: Path) -> None:
    servers = [socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo) for _ in range(3)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    targets = {i + 1: "{}:{}".format(*s.server_address) for i, s in enumerate(servers)}
    try:
        with RelayFleet(targets, WanProfile(inter_site_rtt_ms=4, intra_site_rtt_ms=0)) as fleet:
            config = tmp_path / "gateway.json"
            config.write_text('{"nodes": {"1": "x:1"}, "port": 1}')
            assert route_gateway_through(config, fleet.addresses) == {"1": "x:1"}
            assert json.loads(config.read_text())["nodes"] == {
                str(i): a for i, a in fleet.addresses.items()
            }
            assert fleet.cut_site(1) == [2]
            assert _probe(fleet.addresses[1]) == b"x"
            assert _probe(fleet.addresses[2]) == b""  # site 1 is cut off
            fleet.restore_site(1)
            assert _probe(fleet.addresses[2]) == b"x"
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


def _probe(address: str) -> bytes:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.settimeout(0.5)
        sock.sendall(b"x")
        try:
            return sock.recv(1)
        except TimeoutError:
            return b""


def test_exchanges_count_request_answer_turns_not_small_chunks() -> None:
    async def run() -> None:
        async for relay, _ in _relay(LinkProfile(delay_ms=1)):
            reader, writer = await asyncio.open_connection(*relay.address)
            for size in (200, 300, 10, 150):  # the 10-byte chunk is a control frame, not a request
                writer.write(b"x" * size)
                await writer.drain()
                await reader.readexactly(size)
            writer.close()
            assert relay.exchanges == 3

    asyncio.run(run())
