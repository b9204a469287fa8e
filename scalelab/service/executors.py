"""Executors: how the service turns workload calls into Dask tasks.

An executor is a small class with one job, chosen by ``executor.kind``:

- ``direct``: one Dask task per request (``pure=False``, so equal calls are not
  merged). Each request pays the scheduler's per-task overhead.
- ``batched``: requests are gathered for at most ``max_wait_ms`` or
  ``max_batch`` items, then one Dask task runs the whole batch and each caller
  receives its own result. The per-task overhead is shared by the batch.

A user class plugs in by import path (``executor.kind = "module:Class"``): it
subclasses :class:`Executor` (or provides the same methods) and is constructed
with ``(client, config, metrics)``. Built-ins are registered by name in
:data:`EXECUTORS`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scalelab.config import ServiceConfig
from scalelab.service.metrics import ServiceMetrics
from scalelab.service.plugins import load_plugin
from scalelab.service.workloads import run_batch, run_task

if TYPE_CHECKING:
    from distributed import Client


@dataclass(frozen=True, slots=True)
class TaskResult:
    """One caller's result, the Dask worker that computed it, and its batch's size."""

    value: Any
    worker: str
    batch_size: int = 1


class Executor:
    """Runs workload calls on the cluster. Subclass it to add a kind of executor.

    ``client`` is an asynchronous :class:`distributed.Client`; ``config`` the
    whole service configuration (an executor reads its ``executor`` section);
    ``metrics`` where to count submitted tasks and batch sizes.
    """

    def __init__(self, client: Client, config: ServiceConfig, metrics: ServiceMetrics) -> None:
        self.client = client
        self.config = config
        self.metrics = metrics

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> TaskResult:
        """Compute ``fn(*args)`` on a Dask worker and return the result with its worker."""
        raise NotImplementedError

    async def close(self) -> None:
        """Finish or fail whatever is pending; called when the executor is replaced or stops."""
        return None


class DirectExecutor(Executor):
    """One Dask task per request."""

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> TaskResult:
        """Submit one task and wait for it."""
        future = self.client.submit(run_task, fn, args, pure=False)
        self.metrics.tasks_submitted.inc()
        self.metrics.batch_size.observe(1)
        worker, value = await future
        return TaskResult(value, worker, 1)


_Pending = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[TaskResult]"]


class BatchedExecutor(Executor):
    """Gathers requests for at most ``max_wait_ms`` or ``max_batch`` items, one task per batch."""

    def __init__(self, client: Client, config: ServiceConfig, metrics: ServiceMetrics) -> None:
        super().__init__(client, config, metrics)
        self.max_batch = config.executor.max_batch
        self.max_wait_s = config.executor.max_wait_ms / 1000.0
        self._pending: list[_Pending] = []
        self._timer: asyncio.TimerHandle | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._closed = False

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> TaskResult:
        """Add the call to the open batch and wait for its own result."""
        if self._closed:
            raise RuntimeError("executor is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[TaskResult] = loop.create_future()
        self._pending.append((fn, args, future))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._flush)
        return await future

    def _flush(self) -> None:
        """Close the open batch and start its Dask task."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        task = asyncio.ensure_future(self._run_batch(batch))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _run_batch(self, batch: list[_Pending]) -> None:
        """Run one batch as one task and hand each caller its own outcome."""
        size = len(batch)
        self.metrics.tasks_submitted.inc()
        self.metrics.batch_size.observe(size)
        try:
            future = self.client.submit(
                run_batch, [(fn, args) for fn, args, _ in batch], pure=False
            )
            worker, outcomes = await future
        except BaseException as exc:
            for _, _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
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
        self._flush()
        if self._batches:
            with contextlib.suppress(Exception):
                await asyncio.wait(set(self._batches), timeout=10.0)


EXECUTORS: dict[str, type[Executor]] = {
    "direct": DirectExecutor,
    "batched": BatchedExecutor,
}
"""Built-in executors by the name ``executor.kind`` uses."""


def register_executor(name: str, cls: type[Executor]) -> None:
    """Make ``cls`` available as ``executor.kind = name``."""
    EXECUTORS[name] = cls


def executor_class(kind: str) -> type[Executor]:
    """The class for ``executor.kind``: a registered name or a ``module:Class`` path."""
    if kind in EXECUTORS:
        return EXECUTORS[kind]
    return load_plugin(kind, Executor, "executor.kind")


def make_executor(client: Client, config: ServiceConfig, metrics: ServiceMetrics) -> Executor:
    """Construct the executor ``config.executor.kind`` names."""
    return executor_class(config.executor.kind)(client, config, metrics)
