"""``direct``: one Dask task per request; each request pays the scheduler's per-task overhead."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scalelab.service.executors.base import Executor, TaskResult
from scalelab.service.workloads import run_task


class DirectExecutor(Executor):
    """One Dask task per request (``pure=False``, so equal calls are not merged)."""

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> TaskResult:
        """Submit one task and wait for it."""
        retries = self.config.executor.retries or None
        future = self.client.submit(run_task, fn, args, pure=False, retries=retries)
        self.metrics.tasks_submitted.inc()
        self.metrics.batch_size.observe(1)
        worker, value = await future
        return TaskResult(value, worker, 1)
