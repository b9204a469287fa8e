"""``direct``: one Dask task per request; each request pays the scheduler's per-task overhead."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from scalelab.service.executors.base import Executor, TaskResult
from scalelab.service.workloads import run_task


async def _outcome(future: Any) -> Any:
    return await future


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a call nobody waits for any more."""
    with contextlib.suppress(BaseException):
        task.exception()


async def wait_for_future(future: Any, client: Any = None) -> Any:
    """The result of a Dask future, such that cancelling the caller cancels only its task.

    The Dask client gathers the results of concurrent waiters together; cancelling
    one waiter (a timeout, a hedge's loser) while it awaits the future directly would
    cancel that shared gather, and with it every other request waiting on it. The
    wait is shielded instead: the caller is cancelled at once, and the task is
    cancelled on the cluster through ``client`` (a task still queued never runs; one
    already running finishes on its worker, its result dropped).
    """
    inner = asyncio.ensure_future(_outcome(future))
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError:
        inner.add_done_callback(_consume)
        if client is not None:
            with contextlib.suppress(Exception):
                cancelling = asyncio.ensure_future(client.cancel([future]))
                cancelling.add_done_callback(_consume)
        raise


class DirectExecutor(Executor):
    """One Dask task per request (``pure=False``, so equal calls are not merged)."""

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> TaskResult:
        """Submit one task and wait for it."""
        retries = self.config.executor.retries or None
        future = self.client.submit(run_task, fn, args, pure=False, retries=retries)
        self.metrics.tasks_submitted.inc()
        self.metrics.batch_size.observe(1)
        worker, value = await wait_for_future(future, self.client)
        return TaskResult(value, worker, 1)

    async def run_at(
        self, fn: Callable[..., Any], args: tuple[Any, ...], workers: Sequence[str]
    ) -> TaskResult:
        """Submit one task that must run on one of ``workers`` (where its data is)."""
        future = self.client.submit(
            run_task, fn, args, pure=False, workers=list(workers), allow_other_workers=False
        )
        self.metrics.tasks_submitted.inc()
        self.metrics.batch_size.observe(1)
        worker, value = await wait_for_future(future, self.client)
        return TaskResult(value, worker, 1)
