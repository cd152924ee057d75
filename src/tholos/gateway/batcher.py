"""Micro-batching: concurrent callers' items are grouped into one batch per round trip."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    """`await submit(items)` returns when a handler call has processed them. Items waiting while
    `max_inflight` batches run are coalesced into the next batch (up to `max_batch`).

    With `linger` > 0, a batch that would start with fewer than `min_batch` items while another
    batch is still running waits up to `linger` seconds for more: fewer, larger round trips when
    busy (each costs the nodes a fixed overhead), no added latency when idle."""

    def __init__(
        self,
        handler: Callable[[list[T]], Awaitable[None]],
        max_batch: int = 256,
        max_inflight: int = 3,
        *,
        linger: float = 0.0,
        min_batch: int = 1,
    ) -> None:
        self.handler = handler
        self.max_batch = max_batch
        self.linger = linger
        self.min_batch = min_batch
        self._sem = asyncio.Semaphore(max_inflight)
        self._queue: list[tuple[T, asyncio.Future[None], contextvars.Context]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), context=contextvars.Context())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def submit(self, items: list[T]) -> None:
        self.start()
        loop = asyncio.get_running_loop()
        futs = []
        for it in items:
            f: asyncio.Future[None] = loop.create_future()
            self._queue.append((it, f, contextvars.copy_context()))
            futs.append(f)
        self._wake.set()
        await asyncio.gather(*futs)

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._sem.acquire()
                if self.linger > 0 and self._running and len(self._queue) < self.min_batch:
                    await self._gather_more()
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                t = asyncio.create_task(self._run(batch), context=batch[0][2].copy())
                self._running.add(t)
                t.add_done_callback(self._running.discard)

    async def _gather_more(self) -> None:
        """Wait until `min_batch` items are queued or `linger` seconds have passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger
        while len(self._queue) < self.min_batch and (left := deadline - loop.time()) > 0:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                break

    async def _run(self, batch: list[tuple[T, asyncio.Future[None], contextvars.Context]]) -> None:
        try:
            await self.handler([it for it, _, _ in batch])
            for _, f, _ in batch:
                if not f.done():
                    f.set_result(None)
        except Exception as exc:
            for _, f, _ in batch:
                if not f.done():
                    f.set_exception(exc)
        finally:
            self._sem.release()
