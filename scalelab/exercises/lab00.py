"""Exercises of lab 00, quickstart: per-task overhead, and what batching buys.

Notebook: ``notebooks/solutions/00_quickstart.ipynb``. A lab module defines its
exercises with :func:`~scalelab.exercises.registry.register`; expected values
are functions of the check's context, hidden tests are plain functions in this
module, and every exercise has a solution and an ``example_context`` so the
tests can prove the solution passes and the blank fails without a notebook.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any

from scalelab.exercises.base import Context
from scalelab.exercises.code import CodeExercise
from scalelab.exercises.context import figure
from scalelab.exercises.live import LiveStep
from scalelab.exercises.number import Mistake, NumberExercise
from scalelab.exercises.reflection import ReflectionExercise
from scalelab.exercises.registry import register
from scalelab.service.executors import Executor, TaskResult
from scalelab.service.workloads import run_task

LAB_TITLE = "Quickstart: direct and batched execution"


def _direct_rps(c: Context) -> float:
    return figure(c, "direct_rps", from_run="throughput_rps")


def _overhead_ms(c: Context) -> float:
    return 1000.0 / _direct_rps(c)


register(
    NumberExercise(
        "lab00.q1",
        """Per-task overhead: how many milliseconds does one task cost the bottleneck?

        With the direct executor every request is one Dask task, and the run is
        limited by the per-task overhead (scheduler, client and event loop), not
        by the work itself. From the direct run's throughput, how many
        milliseconds of that overhead does each task cost?""",
        _overhead_ms,
        rel_tol=0.05,
        unit="ms",
        hint="if the bottleneck gets through X tasks each second, each task takes it 1/X s.",
        usage='check("lab00.q1", overhead_ms, run=direct_run) or direct_rps=...',
        mistakes=[
            Mistake(
                lambda c: figure(c, "mean_ms", from_run="mean_ms"),
                "that is the latency a request sees, which includes waiting in line; "
                "the overhead is the time the bottleneck spends per task.",
            )
        ],
        example_context=lambda: {"run": {"throughput_rps": 487.3, "mean_ms": 64.1}},
    )
)


def _batched_rps(c: Context) -> float:
    predicted = figure(c, "batch_size") * _direct_rps(c)
    if "ceiling_rps" in c:
        predicted = min(predicted, float(c["ceiling_rps"]))
    return predicted


register(
    NumberExercise(
        "lab00.q2",
        """Predict the batched throughput from the per-task overhead.

        The batched executor sends one Dask task per batch of B requests, so the
        per-task overhead is paid once per batch. Given the direct executor's
        throughput (``direct_rps``, or ``run=`` the direct run) and the mean
        batch size measured in the batched run (``batch_size``), predict the
        batched executor's requests per second. If you also measured the
        service's ceiling without Dask (``ceiling_rps``, its /ping rate), the
        prediction cannot exceed it.""",
        _batched_rps,
        rel_tol=0.05,
        unit="requests/s",
        hint="the throughput is set by the tightest bottleneck: tasks per second times "
        "requests per task, unless something else caps it first.",
        usage='check("lab00.q2", rps, direct_rps=..., batch_size=...) (ceiling_rps=... optional)',
        mistakes=[
            Mistake(
                _direct_rps,
                "that is the direct executor's rate; batching changes how many requests "
                "share one task.",
            ),
            Mistake(
                lambda c: figure(c, "batch_size") * _direct_rps(c),
                "that would hold if the per-task overhead were the only limit; "
                "what else caps the service?",
            ),
            Mistake(
                lambda c: _direct_rps(c) / figure(c, "batch_size"),
                "batching shares one task among B requests, so it multiplies, not divides.",
            ),
        ],
        example_context=lambda: {"direct_rps": 487.3, "batch_size": 7.4, "ceiling_rps": 5350.0},
    )
)


register(
    ReflectionExercise(
        "lab00.q3",
        """Batching raised throughput. What did it do to latency at low load, and why?""",
        "At low load a batch rarely fills, so each request waits up to max_wait_ms for "
        "company before its task is sent: latency rises by up to that wait, while "
        "throughput gains only appear once requests arrive faster than the overhead allows.",
    )
)


class SolutionDirectExecutor(Executor):
    """The reference answer to lab00.q4: one Dask task per request, never merged."""

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> TaskResult:
        """Submit one task and wait for it."""
        future = self.client.submit(run_task, fn, args, pure=False)
        self.metrics.tasks_submitted.inc()
        worker, value = await future
        return TaskResult(value, worker, 1)


class _FakeFuture:
    """What the hidden tests' client returns: awaitable, already computed."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        yield from asyncio.sleep(0).__await__()
        return self.value


class _FakeClient:
    """An in-process stand-in for Dask's async client that merges equal pure tasks, as Dask does."""

    def __init__(self) -> None:
        self.tasks: dict[object, _FakeFuture] = {}
        self.counter = 0

    def submit(self, func: Callable[..., Any], *args: Any, pure: bool = True, **kw: Any) -> Any:
        self.counter += 1
        key: object = (func, repr(args)) if pure else self.counter
        if key not in self.tasks:
            self.tasks[key] = _FakeFuture(func(*args))
        return self.tasks[key]


def _make(cls: type) -> tuple[Any, _FakeClient]:
    from scalelab.config import ServiceConfig
    from scalelab.service.metrics import ServiceMetrics

    client = _FakeClient()
    return cls(client, ServiceConfig(), ServiceMetrics()), client


def _run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion, also from a Jupyter kernel, whose event loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _add(a: int, b: int) -> int:
    return a + b


def _test_returns_result(cls: type) -> None:
    """returns the workload's value and the worker that ran it"""
    executor, _ = _make(cls)
    result = _run_sync(executor.run(_add, (2, 3)))
    assert isinstance(result, TaskResult), "run() must return a TaskResult"
    assert result.value == 5, "the TaskResult's value is not what the workload returned"
    assert result.worker == "local", "the TaskResult's worker is not the one run_task reported"
    assert result.batch_size == 1, "a direct executor runs batches of one"


def _test_one_task_per_request(cls: type) -> None:
    """equal requests run as separate tasks"""
    executor, client = _make(cls)

    async def many() -> list[TaskResult]:
        return list(await asyncio.gather(*(executor.run(_add, (1, 1)) for _ in range(10))))

    results = _run_sync(many())
    assert all(r.value == 2 for r in results), "some requests got a wrong value"
    assert len(client.tasks) == 10, (
        f"10 equal requests became {len(client.tasks)} Dask task(s); "
        "Dask merges equal calls unless told they are not pure"
    )


register(
    CodeExercise(
        "lab00.q4",
        """Write the direct executor: one Dask task per request.

        Subclass ``scalelab.service.executors.Executor`` and implement
        ``async def run(self, fn, args)``: submit ``run_task(fn, args)`` with
        ``self.client``, await it, and return a ``TaskResult``. Write the class
        to a file beside the notebook (``%%writefile my_executor.py``) so the
        service can import it; the check then runs it in the service.""",
        SolutionDirectExecutor,
        [_test_returns_result, _test_one_task_per_request],
        expects="class",
        hint="run_task returns (worker, value); Client.submit takes pure=.",
        live=LiveStep(field="service.executor.kind", compare_with="direct"),
    )
)
