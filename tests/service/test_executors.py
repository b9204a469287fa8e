"""Executors against a real (in-process) Dask cluster: results, workers, and batching."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from distributed import Client, LocalCluster

from scalelab.config import ServiceConfig
from scalelab.service.executors import BatchedExecutor, DirectExecutor, Executor, make_executor
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


def test_direct_runs_one_task_per_request() -> None:
    async def body(client: Client) -> None:
        metrics = ServiceMetrics()
        executor = make_executor(client, _config(kind="direct"), metrics)
        assert isinstance(executor, DirectExecutor)
        results = await asyncio.gather(*(executor.run(cpu_work, (7,)) for _ in range(5)))
        worker = next(iter(client.scheduler_info()["workers"] or {}), None)
        assert {r.value for r in results} == {cpu_work(7)}
        assert {r.batch_size for r in results} == {1}
        assert all(r.worker.startswith(("tcp://", "inproc://")) for r in results)
        if worker:
            assert {r.worker for r in results} == {worker}
        assert metrics.tasks_submitted._value.get() == 5  # not merged although equal
        with pytest.raises(ValueError, match="bad input 3"):
            await executor.run(_fails, (3,))

    with_cluster(body)


def test_batched_gathers_concurrent_requests_and_answers_each() -> None:
    async def body(client: Client) -> None:
        metrics = ServiceMetrics()
        executor = make_executor(
            client, _config(kind="batched", max_wait_ms=50, max_batch=8), metrics
        )
        assert isinstance(executor, BatchedExecutor)
        results = await asyncio.gather(*(executor.run(cpu_work, (n,)) for n in range(20)))
        assert [r.value for r in results] == [cpu_work(n) for n in range(20)]
        sizes = sorted(r.batch_size for r in results)
        assert max(sizes) == 8  # full batches leave at max_batch
        assert metrics.tasks_submitted._value.get() == 3  # 8 + 8 + 4
        # A failing call fails only its caller; the others in its batch succeed.
        ok, bad = await asyncio.gather(
            executor.run(io_work, (1.0,)), executor.run(_fails, (9,)), return_exceptions=True
        )
        assert not isinstance(ok, BaseException) and ok.value == 1.0 and ok.batch_size == 2
        assert isinstance(bad, ValueError)
        await executor.close()

    with_cluster(body)


def test_batched_waits_at_most_max_wait() -> None:
    async def body(client: Client) -> None:
        executor = make_executor(
            client, _config(kind="batched", max_wait_ms=30, max_batch=1000), ServiceMetrics()
        )
        result = await asyncio.wait_for(executor.run(cpu_work, (1,)), 10)
        assert result.batch_size == 1 and result.value == cpu_work(1)
        # close() sends what is pending instead of leaving callers waiting.
        pending = asyncio.ensure_future(executor.run(cpu_work, (2,)))
        await asyncio.sleep(0)
        await executor.close()
        assert (await asyncio.wait_for(pending, 10)).value == cpu_work(2)

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
