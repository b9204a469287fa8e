"""Request coalescing: one computation per key in flight, however many requests ask for it.

When a popular entry expires, every request that arrives before the first
recomputation finishes would otherwise start its own (a cache stampede, or
"thundering herd"). A :class:`Coalescer` keeps the computation in flight per
key as an :class:`asyncio.Task`; later requests for the same key await that
task instead. The computation runs as its own task, so a caller that goes away
(a client disconnecting) does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Computations in flight, by key."""

    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._inflight

    def start(
        self, key: Hashable, compute: Callable[[], Awaitable[T]]
    ) -> tuple[asyncio.Task[T], bool]:
        """The task computing ``key``: the one in flight, or a new one from ``compute``.

        Returns the task and whether this call started it.
        """
        task = self._inflight.get(key)
        if task is not None:
            return task, False
        task = asyncio.ensure_future(_call(compute))
        self._inflight[key] = task
        task.add_done_callback(lambda t: self._done(key, t))
        return task, True

    async def run(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Await the computation of ``key`` (starting it if none is in flight).

        Returns the value and whether this call started the computation; a
        failure of the computation is raised to every caller.
        """
        task, leader = self.start(key, compute)
        return await asyncio.shield(task), leader

    def _done(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            # Retrieved here so that a failure nobody awaited is not logged as lost.
            task.exception()

    async def cancel_all(self) -> None:
        """Cancel every computation in flight (the service is stopping)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


async def _call(compute: Callable[[], Awaitable[T]]) -> T:
    return await compute()
