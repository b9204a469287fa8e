"""``actor``: one stateful Dask actor per worker, called directly, without the scheduler.

A Dask task costs a round trip through the scheduler (client to scheduler to
worker and back, each hop batched every few milliseconds). An actor
(``client.submit(Cls, actor=True, workers=[w])``) is an object living on one
worker whose method calls travel from the client straight to that worker: the
scheduler is not on the request path. The price: the scheduler no longer
balances the load, tracks the work, or recomputes it when a worker dies;
the service must choose the worker itself (``choice``: ``round_robin``, or
``least_outstanding`` calls) and notice when a worker goes away.

Here one :class:`TaskActor` lives on each worker, created at start and for
every worker that joins later. A call whose actor's worker has gone is retried
once on another actor (the call is lost on the dead worker, as a task would
be), the dead actor is dropped, and actors are created for the workers then
present; when no actor is left the call fails with an error answer. No call
is lost silently. Calls run in the worker's actor thread, one at a time per
worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scalelab.chaos.task_faults import apply_task_fault
from scalelab.config import ServiceConfig
from scalelab.service.executors.base import Executor, TaskResult
from scalelab.service.metrics import ServiceMetrics
from scalelab.service.workloads import worker_address

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger("scalelab.service")

REFRESH_S = 1.0
"""How often the executor compares its actors with the workers the scheduler knows."""

CREATE_TIMEOUT_S = 10.0
"""Longest the creation of an actor on a worker may take."""


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("actor refresh failed: %r", task.exception())


class TaskActor:
    """Lives on one Dask worker and runs workload calls there."""

    def __init__(self) -> None:
        self.address = worker_address()
        self.calls = 0

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """Run one workload call on this worker."""
        self.calls += 1
        apply_task_fault()
        return fn(*args)


class ActorLost(RuntimeError):
    """The worker holding an actor went away during or before a call."""


@dataclass
class _Handle:
    """An actor as the service holds it: its worker, its proxy, its calls outstanding."""

    worker: str
    proxy: Any
    outstanding: int = 0
    alive: bool = True


def _lost(exc: BaseException, handle: _Handle) -> bool:
    """True when ``exc`` says the actor's worker is gone, not that the work itself failed.

    Dask reports it as an ``OSError`` ("Unable to contact Actor's worker"), as a
    ``RuntimeError`` ("Worker holding Actor was lost"), or, from a worker that
    restarted without the actor, as a ``KeyError`` of the actor's key.
    """
    if isinstance(exc, OSError | ActorLost):
        return True
    if isinstance(exc, RuntimeError) and "Worker holding Actor was lost" in str(exc):
        return True
    key = getattr(handle.proxy, "key", None)
    return isinstance(exc, KeyError) and key is not None and str(key) in str(exc)


class ActorExecutor(Executor):
    """Workload calls on one actor per worker, chosen by ``executor.choice``."""

    def __init__(self, client: Client, config: ServiceConfig, metrics: ServiceMetrics) -> None:
        super().__init__(client, config, metrics)
        self.choice = config.executor.choice
        self.handles: list[_Handle] = []
        self._turn = itertools.count()
        self._refresh_lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self._creating: dict[str, asyncio.Task[None]] = {}
        self._gone: set[str] = set()
        self._closed = False
        metrics.actors.set_function(lambda: sum(h.alive for h in self.handles))

    async def start(self) -> None:
        """Create an actor on every worker, then keep watching the workers."""
        await self.refresh()
        if not self.handles:
            raise RuntimeError("no worker to hold an actor; start workers first")
        self._watcher = asyncio.ensure_future(self._watch())

    async def _workers(self) -> set[str]:
        """The workers the scheduler knows now."""
        scheduler: Any = self.client.scheduler
        if scheduler is None:
            return set()
        info = await asyncio.wait_for(scheduler.identity(n_workers=-1), 10.0)
        return set(info.get("workers") or {})

    async def refresh(self) -> None:
        """Drop actors of workers that left; create one on each worker that has none.

        Creating an actor takes a task on its worker; creations run side by side
        and this waits for them (at most :data:`CREATE_TIMEOUT_S`). A worker whose
        actor was lost is never used again: a restarted worker has a new address.
        """
        if self._closed:
            return
        async with self._refresh_lock:
            workers = await self._workers() - self._gone
            for handle in self.handles:
                if handle.worker not in workers:
                    handle.alive = False
            self.handles = [h for h in self.handles if h.alive]
            have = {h.worker for h in self.handles} | set(self._creating)
            for worker in sorted(workers - have):
                self._creating[worker] = asyncio.ensure_future(self._create(worker))
        if self._creating:
            await asyncio.wait(set(self._creating.values()), timeout=CREATE_TIMEOUT_S)

    async def _create(self, worker: str) -> None:
        try:
            future = self.client.submit(TaskActor, actor=True, workers=[worker], pure=False)
            proxy = await asyncio.wait_for(future, CREATE_TIMEOUT_S)
        except Exception as exc:  # the worker went while we asked
            log.warning("no actor on %s: %r", worker, exc)
            self._gone.add(worker)
        else:
            if not self._closed and worker not in self._gone:
                self.handles.append(_Handle(worker, proxy))
                self.metrics.actor_events.labels("created").inc()
        finally:
            self._creating.pop(worker, None)

    def _refresh_soon(self) -> None:
        """Look at the workers again in the background (a worker was just lost)."""
        task = asyncio.ensure_future(self.refresh())
        task.add_done_callback(_log_failure)

    async def _watch(self) -> None:
        while not self._closed:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("actor refresh failed: %r", exc)

    def _pick(self, avoid: set[str]) -> _Handle:
        live = [h for h in self.handles if h.alive and h.worker not in avoid]
        if not live:
            raise ActorLost("no live actor to call: every worker holding one has gone")
        if self.choice == "least_outstanding":
            turn = next(self._turn)
            return min(live, key=lambda h: (h.outstanding, (live.index(h) - turn) % len(live)))
        return live[next(self._turn) % len(live)]

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> TaskResult:
        """Call a chosen worker's actor; retry once elsewhere if that worker has gone."""
        if self._closed:
            raise RuntimeError("executor is closed")
        tried: set[str] = set()
        while True:
            handle = self._pick(tried)
            handle.outstanding += 1
            try:
                value = await handle.proxy.run(fn, args)
            except Exception as exc:
                if not _lost(exc, handle):
                    raise  # the work itself failed: its caller gets the error
                if handle.alive:
                    handle.alive = False
                    self._gone.add(handle.worker)
                    self.metrics.actor_events.labels("lost").inc()
                tried.add(handle.worker)
                self._refresh_soon()
                if len(tried) > 1:
                    raise ActorLost(
                        f"the workers holding the actors called ({', '.join(sorted(tried))}) "
                        f"went away: {type(exc).__name__}: {exc}"
                    ) from None
                self.metrics.actor_events.labels("retried").inc()
                continue
            finally:
                handle.outstanding -= 1
            self.metrics.batch_size.observe(1)
            return TaskResult(value, handle.worker, 1)

    async def close(self) -> None:
        """Stop watching and release the actors (their workers drop them)."""
        self._closed = True
        for task in [self._watcher, *self._creating.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self.handles = []
