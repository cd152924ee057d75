"""Micro-batching: concurrent callers' items are grouped into one batch per round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    """`await submit(items)` returns when a handler call has processed them. Items waiting while
    `max_inflight` batches run are coalesced into the next batch (up to `max_batch`)."""

    def __init__(
        self,
        handler: Callable[[list[T]], Awaitable[None]],
        max_batch: int = 256,
        max_inflight: int = 3,
    ) -> None:
        self.handler = handler
        self.max_batch = max_batch
        self._sem = asyncio.Semaphore(max_inflight)
        self._queue: list[tuple[T, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop())

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
            self._queue.append((it, f))
            futs.append(f)
        self._wake.set()
        await asyncio.gather(*futs)

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._sem.acquire()
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                t = asyncio.create_task(self._run(batch))
                self._running.add(t)
                t.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        try:
            await self.handler([it for it, _ in batch])
            for _, f in batch:
                if not f.done():
                    f.set_result(None)
        except Exception as exc:
            for _, f in batch:
                if not f.done():
                    f.set_exception(exc)
        finally:
            self._sem.release()
