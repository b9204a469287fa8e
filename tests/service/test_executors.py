"""Executors against a real (in-process) Dask cluster: results, workers, and batching."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from distributed import Client, LocalCluster, Worker

from scalelab.config import ServiceConfig
from scalelab.service.executors import (
    ActorExecutor,
    ActorLost,
    BatchedExecutor,
    DirectExecutor,
    Executor,
    make_executor,
)
from scalelab.service.metrics import ServiceMetrics
from scalelab.service.workloads import cpu_work, io_work

pytestmark = pytest.mark.integration


def _fails(x: int) -> int:
    raise ValueError(f"bad input {x}")


def with_cluster(body: Callable[[Client], Awaitable[None]]) -> None:
    """Run ``body(client)`` against a small threaded LocalCluster (fast to start)."""

    async def main() -> None:
        async with (
            LocalCluster(
                n_workers=1,
                threads_per_worker=2,
                processes=False,
                dashboard_address=":0",
                asynchronous=True,
            ) as cluster,
            Client(cluster, asynchronous=True) as client,
        ):
            await body(client)

    asyncio.run(main())


def _config(**executor: Any) -> ServiceConfig:
    return ServiceConfig.model_validate({"executor": executor})


async def _worker_of(client: Client) -> str:
    workers = list((await client.scheduler.identity(n_workers=-1))["workers"])
    assert len(workers) == 1, workers
    return str(workers[0])


def test_direct_runs_one_task_per_request() -> None:
    async def body(client: Client) -> None:
        metrics = ServiceMetrics()
        executor = make_executor(client, _config(kind="direct"), metrics)
        assert isinstance(executor, DirectExecutor)
        results = await asyncio.gather(*(executor.run(cpu_work, (7,)) for _ in range(5)))
        assert {r.value for r in results} == {cpu_work(7)}
        assert {r.batch_size for r in results} == {1}
        assert {r.worker for r in results} == {await _worker_of(client)}
        assert metrics.tasks_submitted._value.get() == 5  # not merged although equal
        with pytest.raises(ValueError, match="bad input 3"):
            await executor.run(_fails, (3,))

    with_cluster(body)


def test_batched_sends_at_once_while_under_its_limit_then_gathers() -> None:
    """Group commit with one batch allowed in flight: the first request leaves alone, at
    once; the others gather while it is out and leave together when it returns."""

    async def body(client: Client) -> None:
        metrics = ServiceMetrics()
        config = _config(kind="batched", max_wait_ms=1000, max_batch=50, max_in_flight_batches=1)
        executor = make_executor(client, config, metrics)
        assert isinstance(executor, BatchedExecutor)
        results = await asyncio.gather(*(executor.run(cpu_work, (n,)) for n in range(20)))
        assert [r.value for r in results] == [cpu_work(n) for n in range(20)]
        assert [r.batch_size for r in results] == [1] + [19] * 19
        assert {r.worker for r in results} == {await _worker_of(client)}
        assert metrics.tasks_submitted._value.get() == 2
        # A failing call fails only its caller; the others in its batch succeed.
        ok, bad = await asyncio.gather(
            executor.run(io_work, (1.0,)), executor.run(_fails, (9,)), return_exceptions=True
        )
        assert not isinstance(ok, BaseException) and ok.value == 1.0
        assert isinstance(bad, ValueError)
        await executor.close()

    with_cluster(body)


def test_batched_leaves_full_batches_at_max_batch_even_at_its_limit() -> None:
    async def body(client: Client) -> None:
        metrics = ServiceMetrics()
        config = _config(kind="batched", max_wait_ms=1000, max_batch=8, max_in_flight_batches=1)
        executor = make_executor(client, config, metrics)
        results = await asyncio.gather(*(executor.run(cpu_work, (n,)) for n in range(20)))
        assert [r.value for r in results] == [cpu_work(n) for n in range(20)]
        # 1 alone, then 8 and 8 at max_batch while one is out, the last 3 when one returns
        assert sorted({r.batch_size for r in results}) == [1, 3, 8]
        assert metrics.tasks_submitted._value.get() == 4
        await executor.close()

    with_cluster(body)


def test_batched_default_limit_is_the_clusters_threads_and_max_wait_bounds_the_wait() -> None:
    async def body(client: Client) -> None:
        config = _config(kind="batched", max_wait_ms=30, max_batch=1000)
        executor = make_executor(client, config, ServiceMetrics())
        assert isinstance(executor, BatchedExecutor)
        assert executor.limit() == 2  # one worker of two threads
        # At low load a request never waits for company.
        result = await asyncio.wait_for(executor.run(cpu_work, (1,)), 10)
        assert result.batch_size == 1 and result.value == cpu_work(1)
        # Both slots busy with slow batches: the next request waits at most max_wait_ms
        # for company, then leaves although no batch has returned.
        slow = [asyncio.ensure_future(executor.run(io_work, (300.0,))) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert executor.in_flight == 2
        waiting = asyncio.ensure_future(executor.run(cpu_work, (2,)))
        await asyncio.sleep(0.01)
        assert executor.in_flight == 2  # gathering
        await asyncio.sleep(0.1)
        assert executor.in_flight == 3 and not any(t.done() for t in slow)  # sent at max_wait
        assert (await asyncio.wait_for(waiting, 10)).value == cpu_work(2)
        await asyncio.gather(*slow)
        # close() sends what is pending instead of leaving callers waiting.
        pending = asyncio.ensure_future(executor.run(cpu_work, (3,)))
        await asyncio.sleep(0)
        await executor.close()
        assert (await asyncio.wait_for(pending, 10)).value == cpu_work(3)

    with_cluster(body)


def test_actor_executor_calls_one_actor_per_worker_without_tasks() -> None:
    async def body(client: Client) -> None:
        metrics = ServiceMetrics()
        executor = make_executor(client, _config(kind="actor"), metrics)
        assert isinstance(executor, ActorExecutor)
        await executor.start()
        try:
            results = await asyncio.gather(*(executor.run(cpu_work, (n,)) for n in range(10)))
            assert [r.value for r in results] == [cpu_work(n) for n in range(10)]
            assert {r.worker for r in results} == {await _worker_of(client)}
            assert metrics.tasks_submitted._value.get() == 0  # no task on the request path
            assert metrics.registry.get_sample_value("scalelab_actors") == 1
            with pytest.raises(ValueError, match="bad input 4"):
                await executor.run(_fails, (4,))  # the work's own error, not a lost actor
            assert not metrics.registry.get_sample_value(
                "scalelab_actor_events_total", {"event": "lost"}
            )
        finally:
            await executor.close()

    with_cluster(body)


class CountingExecutor(Executor):
    """A user executor: direct, but counts its calls."""

    calls = 0

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        type(self).calls += 1
        return await DirectExecutor.run(self, fn, args)  # type: ignore[arg-type]


def test_user_executor_by_import_path() -> None:
    async def body(client: Client) -> None:
        executor = make_executor(
            client, _config(kind=f"{__name__}:CountingExecutor"), ServiceMetrics()
        )
        result = await executor.run(cpu_work, (4,))
        assert result.value == cpu_work(4) and CountingExecutor.calls == 1

    with_cluster(body)


def test_actor_executor_survives_a_worker_going_away_and_uses_one_that_joins() -> None:
    """Calls in flight when a worker closes are retried on the other actor or fail with an
    error; none is lost silently; the actors follow the workers that come and go."""

    async def main() -> None:
        async with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=False,
                dashboard_address=":0",
                asynchronous=True,
            ) as cluster,
            Client(cluster, asynchronous=True) as client,
        ):
            metrics = ServiceMetrics()
            executor = make_executor(client, _config(kind="actor"), metrics)
            await executor.start()
            try:
                workers = {
                    r.worker
                    for r in await asyncio.gather(*(executor.run(cpu_work, (1,)) for _ in range(4)))
                }
                assert len(workers) == 2  # round robin reaches both

                calls = [asyncio.ensure_future(executor.run(io_work, (20.0,))) for _ in range(40)]
                await asyncio.sleep(0.05)
                name = next(iter(cluster.workers))
                await cluster.workers[name].close()
                outcomes = await asyncio.gather(*calls, return_exceptions=True)
                failed = [o for o in outcomes if isinstance(o, BaseException)]
                assert all(isinstance(o, ActorLost) for o in failed), failed
                assert len(outcomes) == 40  # each call ended: an answer or an error
                after = await asyncio.gather(*(executor.run(cpu_work, (2,)) for _ in range(10)))
                assert {r.value for r in after} == {cpu_work(2)}
                await executor.refresh()
                assert metrics.registry.get_sample_value("scalelab_actors") == 1

                async with Worker(cluster.scheduler_address, nthreads=1):  # a worker joins
                    await client.wait_for_workers(2)
                    await executor.refresh()
                    assert metrics.registry.get_sample_value("scalelab_actors") == 2
                    spread = await asyncio.gather(*(executor.run(cpu_work, (3,)) for _ in range(6)))
                    assert len({r.worker for r in spread}) == 2
                    await executor.close()
            finally:
                await executor.close()

    asyncio.run(main())
