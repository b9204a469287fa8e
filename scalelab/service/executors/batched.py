"""``batched``: group commit; one Dask task carries a whole batch of requests.

The per-task overhead of Dask (the scheduler's round trip) is paid once per
batch instead of once per request. When to send a batch is the lesson:

- while fewer than ``max_in_flight_batches`` batches are in flight (by default
  one per worker thread), a request leaves at once, alone or with whatever is
  waiting: at low load batching costs no waiting;
- while that many are in flight, requests gather, and the batch leaves when a
  batch in flight returns, when it holds ``max_batch`` requests, or when its
  first request has waited ``max_wait_ms``, whichever comes first: at high
  load batches fill by themselves.

This is the "group commit" of databases (a log flush takes every commit that
arrived during the previous flush), as opposed to waiting a fixed time for
company, which slows every request at low load.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scalelab.config import ServiceConfig
from scalelab.service.executors.base import Executor, TaskResult
from scalelab.service.metrics import ServiceMetrics
from scalelab.service.workloads import run_batch

if TYPE_CHECKING:
    from distributed import Client

_Pending = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[TaskResult]"]

THREADS_REFRESH_S = 1.0
"""How often the default batch limit looks at the cluster's thread count again."""


class BatchedExecutor(Executor):
    """Gathers requests into batches, one Dask task per batch, by the group-commit rule."""

    def __init__(self, client: Client, config: ServiceConfig, metrics: ServiceMetrics) -> None:
        super().__init__(client, config, metrics)
        section = config.executor
        self.max_batch = section.max_batch
        self.max_wait_s = section.max_wait_ms / 1000.0
        self.fixed_limit = section.max_in_flight_batches
        self.in_flight = 0
        self._pending: list[_Pending] = []
        self._timer: asyncio.TimerHandle | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._closed = False
        self._threads = 1
        self._threads_at = -THREADS_REFRESH_S

    def limit(self) -> int:
        """Batches allowed in flight before requests gather."""
        if self.fixed_limit:
            return self.fixed_limit
        now = time.monotonic()
        if now - self._threads_at >= THREADS_REFRESH_S:
            self._threads_at = now
            with contextlib.suppress(Exception):
                # The client's cached view of the cluster, refreshed every few seconds.
                threads = int(self.client.scheduler_info().get("total_threads") or 1)
                self._threads = max(threads, 1)
        return self._threads

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> TaskResult:
        """Add the call to the open batch and wait for its own result."""
        if self._closed:
            raise RuntimeError("executor is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[TaskResult] = loop.create_future()
        self._pending.append((fn, args, future))
        if self.in_flight < self.limit() or len(self._pending) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._flush)
        return await future

    def _flush(self) -> None:
        """Send what is waiting (at most ``max_batch`` requests) as one Dask task."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        batch = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        self.in_flight += 1
        task = asyncio.ensure_future(self._run_batch(batch))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)
        if self._pending:  # more than one full batch was waiting
            self._timer = asyncio.get_running_loop().call_later(0, self._flush)

    async def _run_batch(self, batch: list[_Pending]) -> None:
        """Run one batch as one task and hand each caller its own outcome."""
        size = len(batch)
        self.metrics.tasks_submitted.inc()
        self.metrics.batch_size.observe(size)
        try:
            future = self.client.submit(
                run_batch,
                [(fn, args) for fn, args, _ in batch],
                pure=False,
                retries=self.config.executor.retries or None,
            )
            worker, outcomes = await future
        except BaseException as exc:
            for _, _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        finally:
            self.in_flight -= 1
            if self._pending and not self._closed:
                self._flush()  # what gathered while this batch was out leaves now
        for (_, _, waiter), (ok, value) in zip(batch, outcomes, strict=True):
            if waiter.done():  # the caller went away
                continue
            if ok:
                waiter.set_result(TaskResult(value, worker, size))
            else:
                waiter.set_exception(value)

    async def close(self) -> None:
        """Send what is pending now and wait (up to 10 s) for the batches in flight."""
        self._closed = True
        while self._pending:
            self._flush()
        if self._batches:
            with contextlib.suppress(Exception):
                await asyncio.wait(set(self._batches), timeout=10.0)
