"""A TCP relay with one-way delay, jitter and cuts, in front of one node.

Every chunk read from one side is delivered to the other `delay + U(0, jitter)` later, never
before an earlier chunk of the same direction (TCP keeps order, so jitter never reorders). A cut
black-holes the link as a failed WAN path does: open connections stall (nothing is forwarded,
nothing is reset) and new connections are accepted but never reach the target, so the peers see
time-outs rather than refusals. `restore` ends the cut: stalled connections are closed (as a
path that came back after TCP gave up) and new ones flow again.

`exchanges` counts request/answer turns: a chunk of at least REQUEST_BYTES from the dialling side
after the other side last spoke (or first on its connection). At one request in flight that is
the number of round trips over the link; smaller chunks (HTTP/2 window updates, ping acks) are
not requests and do not count.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

CHUNK = 64 * 1024
REQUEST_BYTES = 100  # above a TLS record holding only HTTP/2 control frames


@dataclass
class LinkProfile:
    """One-way delay and jitter of a link, in milliseconds."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0

    def sample(self, rng: random.Random) -> float:
        """One delivery delay in seconds."""
        jitter = rng.uniform(0.0, self.jitter_ms) if self.jitter_ms > 0 else 0.0
        return (self.delay_ms + jitter) / 1000.0


class Relay:
    """Listens on (host, port) and forwards every connection to the target with the profile."""

    def __init__(
        self,
        target: tuple[str, int],
        profile: LinkProfile | None = None,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        seed: int | None = None,
    ) -> None:
        self.target = target
        self.profile = profile or LinkProfile()
        self._listen = listen
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._cut = False
        self._streams: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.bytes_forwarded = 0
        self.exchanges = 0

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("relay not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def is_cut(self) -> bool:
        return self._cut

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._accept, *self._listen)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._close_streams()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def cut(self) -> None:
        """Black-hole the link from now on (see the module docstring)."""
        self._cut = True

    def restore(self) -> None:
        """End a cut: stalled connections are closed, new ones flow again."""
        self._cut = False
        self._close_streams()

    def _close_streams(self) -> None:
        for writer in list(self._streams):
            writer.close()
        self._streams.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._streams.add(writer)
        if self._cut:
            return  # held open, never forwarded: the peer times out
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            self._streams.discard(writer)
            return
        self._streams.add(up_writer)
        answered = [True]  # per connection: did the target speak last?
        self._spawn(self._pump(reader, up_writer, answered, request=True))
        self._spawn(self._pump(up_reader, writer, answered, request=False))

    def _turn(self, answered: list[bool], request: bool, size: int) -> None:
        """Count a request that follows an answer (see the module docstring)."""
        if not request:
            answered[0] = True
        elif size >= REQUEST_BYTES and answered[0]:
            answered[0] = False
            self.exchanges += 1

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        answered: list[bool],
        *,
        request: bool,
    ) -> None:
        """Forward one direction; chunks are queued with their due time and sent in order."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.ensure_future(self._deliver(queue, writer))
        last_due = 0.0
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                self._turn(answered, request, len(data))
                due = max(last_due, time.monotonic() + self.profile.sample(self._rng))
                last_due = due
                await queue.put((due, data))
        except (ConnectionError, OSError):
            pass
        finally:
            await queue.put((last_due, b""))
            with contextlib.suppress(Exception):
                await sender

    async def _deliver(
        self, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                while self._cut and not writer.is_closing():
                    await asyncio.sleep(0.01)  # stalled, not dropped: TCP would retransmit
                if not data or writer.is_closing():
                    break
                writer.write(data)
                self.bytes_forwarded += len(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            self._streams.discard(writer)
