"""Hidden part of lab 00: expected values, wrong models, the reference executor and its tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from scalelab.analysis import compare
from scalelab.exercises import Mistake, Verdict, hide
from scalelab.exercises.context import Context
from scalelab.service.executors import Executor, TaskResult
from scalelab.service.workloads import run_task

from ._support import figures, mean_throughput, run_sync, throughput

# --- q1: the bottleneck's time per request ------------------------------------------------


def _ms_per_request(ctx: Context) -> float:
    return 1000.0 / throughput(ctx.run("run"))


hide(
    "lab00.q1",
    expected=_ms_per_request,
    rel_tol=0.05,
    mistakes=[
        Mistake(
            lambda ctx: float(figures(ctx.run("run"))["mean_ms"]),
            "that is the latency a request sees, most of it spent waiting in line behind "
            "the others; the question is how long the bottleneck works on each one.",
        ),
        Mistake(
            lambda ctx: float(figures(ctx.run("run"))["p50_ms"]),
            "that is the median latency, waiting included; the question is how long the "
            "bottleneck works on each request.",
        ),
        Mistake(
            lambda ctx: throughput(ctx.run("run")),
            "that is requests per second; the question asks for time per request.",
        ),
    ],
)

# --- q2: predict the batched throughput ---------------------------------------------------


def _direct_rps(ctx: Context) -> float:
    return mean_throughput(ctx.runs("direct"))


def _batched_prediction(ctx: Context) -> float:
    return float(ctx.param("max_batch")) * _direct_rps(ctx)


hide(
    "lab00.q2",
    expected=_batched_prediction,
    rel_tol=0.10,
    measured=lambda ctx: mean_throughput(ctx.runs("run")),
    mistakes=[
        Mistake(
            _direct_rps,
            "that is what the direct executor served; batching changes how many requests "
            "share the cost that limits it.",
        ),
        Mistake(
            lambda ctx: _direct_rps(ctx) / float(ctx.param("max_batch")),
            "a batch shares one task's cost among its requests: more requests per task, not fewer.",
        ),
        Mistake(
            lambda ctx: 32.0 * _direct_rps(ctx),
            "32 users could fill a batch of 32, but max_batch caps each batch.",
        ),
    ],
)

# --- q3: is batching significantly faster? ------------------------------------------------


def _intervals(ctx: Context, over: str) -> dict[str, tuple[float, float]]:
    direct = sorted(ctx.runs("direct"), key=lambda r: r.repeat)
    even = [r for r in direct if r.repeat % 2 == 0]
    odd = [r for r in direct if r.repeat % 2 == 1]
    aa = compare(even, odd, metric="throughput", over=over)
    ab = compare(direct, ctx.runs("batched"), metric="throughput", over=over)
    return {"A/A": (aa.ci_low, aa.ci_high), "A/B": (ab.ci_low, ab.ci_high)}


def _close(got: tuple[float, float], want: tuple[float, float], either_sign: bool) -> bool:
    width = max(want[1] - want[0], 1e-9)
    tol = 0.10 * width + 1e-6 * max(abs(want[0]), abs(want[1]), 1.0)
    candidates = [want, (-want[1], -want[0])] if either_sign else [want]
    return any(abs(got[0] - w[0]) <= tol and abs(got[1] - w[1]) <= tol for w in candidates)


def judge_significance(answer: dict[str, tuple[float, float]], ctx: Context) -> Verdict:
    """Both intervals against compare() over repeats, on the runs the grader validated."""
    truth = _intervals(ctx, "repeats")
    wrong = [k for k in ("A/A", "A/B") if not _close(answer[k], truth[k], k == "A/A")]
    if not wrong:
        ab = truth["A/B"]
        faster = "significantly faster" if ab[0] > 0 else "not significantly faster"
        return Verdict(True, f"correct: both intervals; batching is {faster} here.")
    try:
        pseudo = _intervals(ctx, "requests")
    except Exception:  # noqa: BLE001 - only a hint depends on it
        pseudo = {}
    if pseudo and all(_close(answer[k], pseudo[k], k == "A/A") for k in wrong):
        return Verdict(
            False,
            f"{' and '.join(wrong)} treat(s) every second of a run as an independent "
            "observation; seconds of one run share its conditions, so what replicates here?",
        )
    return Verdict(False, f"the {' and '.join(wrong)} interval(s) are not what your runs give.")


hide(
    "lab00.q3",
    judge=judge_significance,
    reference=lambda ctx: _intervals(ctx, "repeats"),
)

# --- q4: reflection -----------------------------------------------------------------------

hide(
    "lab00.q4",
    model_answer=(
        "Almost nothing, whatever max_wait_ms: with one user the worker threads are never all "
        "busy, so group commit sends each request at once as a batch of one, as direct does. A "
        "request waits for its batch only while every thread already runs one; then the wait "
        "costs little, because it would have queued anyway, and the next task carries many "
        "requests for the price of one."
    ),
    rubric=(
        "at one user, latency about that of direct, whatever max_wait_ms",
        "group commit: a batch leaves at once while a worker thread is free",
        "requests gather only when every thread is busy (under load), where waiting is cheap",
    ),
)

# --- q5: the direct executor --------------------------------------------------------------


class SolutionBoundedExecutor(Executor):
    """The reference answer to lab00.q5: a task per request, at most max_tasks at a time."""

    max_tasks = 8

    def __init__(self, client: Any, config: Any, metrics: Any) -> None:
        super().__init__(client, config, metrics)
        self.slots = asyncio.Semaphore(self.max_tasks)

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> TaskResult:
        """Wait for a slot, then one task that Dask must not merge with an equal one."""
        async with self.slots:
            where, result = await self.client.submit(run_task, fn, args, pure=False)
        self.metrics.tasks_submitted.inc()
        return TaskResult(result, where, 1)


class _FakeFuture:
    """What the hidden tests' client returns: awaitable, resolved when its gate opens."""

    def __init__(self, value: Any, gate: asyncio.Event | None, client: _FakeClient) -> None:
        self.value = value
        self.gate = gate
        self.client = client
        client.in_flight += 1
        client.most = max(client.most, client.in_flight)

    def __await__(self) -> Any:
        if self.gate is not None:
            yield from self.gate.wait().__await__()
        for _ in range(3):  # let every request in flight run up to its submit
            yield from asyncio.sleep(0).__await__()
        self.client.in_flight -= 1
        return self.value


class _FakeClient:
    """An in-process stand-in for Dask's async client that merges equal pure tasks, as Dask does.

    With ``gate_after=n`` no task finishes until ``n`` tasks have been submitted:
    an executor that waits for one request before submitting the next never
    gets there. ``in_flight`` counts tasks submitted and not yet awaited to the
    end; ``most`` is the largest it reached.
    """

    def __init__(self, gate_after: int = 0) -> None:
        self.tasks: dict[object, _FakeFuture] = {}
        self.counter = 0
        self.gate_after = gate_after
        self.gate: asyncio.Event | None = None
        self.in_flight = 0
        self.most = 0

    def submit(self, func: Callable[..., Any], *args: Any, pure: bool = True, **kw: Any) -> Any:
        if self.gate_after and self.gate is None:
            self.gate = asyncio.Event()
        self.counter += 1
        key: object = (func, repr(args)) if pure else self.counter
        if key not in self.tasks:
            self.tasks[key] = _FakeFuture(func(*args), self.gate, self)
        if self.gate is not None and self.counter >= self.gate_after:
            self.gate.set()
        return self.tasks[key]


def _make(cls: type, client: _FakeClient) -> Any:
    from scalelab.config import ServiceConfig
    from scalelab.service.metrics import ServiceMetrics

    return cls(client, ServiceConfig(), ServiceMetrics())


def _add(a: int, b: int) -> int:
    return a + b


def _test_returns_result(cls: type) -> None:
    """returns the workload's value and the worker that ran it"""
    executor = _make(cls, _FakeClient())
    result = run_sync(executor.run(_add, (2, 3)))
    assert isinstance(result, TaskResult), "run() must return a TaskResult"
    assert result.value == 5, "the TaskResult's value is not what the workload returned"
    assert result.worker == "local", "the TaskResult's worker is not the one run_task reported"
    assert result.batch_size == 1, "a direct executor runs batches of one"


def _test_one_task_per_request(cls: type) -> None:
    """equal requests run as separate tasks"""
    client = _FakeClient()
    executor = _make(cls, client)

    async def many() -> list[TaskResult]:
        return list(await asyncio.gather(*(executor.run(_add, (1, 1)) for _ in range(10))))

    results = run_sync(many())
    assert all(r.value == 2 for r in results), "some requests got a wrong value"
    assert len(client.tasks) == 10, (
        f"10 equal requests became {len(client.tasks)} Dask task(s); "
        "Dask merges equal calls unless told they are not pure"
    )


def _test_requests_overlap(cls: type) -> None:
    """up to max_tasks requests run side by side"""
    bound = int(cls.max_tasks)  # type: ignore[attr-defined]
    client = _FakeClient(gate_after=bound)
    executor = _make(cls, client)

    async def burst() -> None:
        await asyncio.wait_for(
            asyncio.gather(*(executor.run(_add, (i, i)) for i in range(bound))), timeout=2.0
        )

    try:
        run_sync(burst())
    except TimeoutError:
        raise AssertionError(
            f"{bound} requests in flight never got {bound} tasks submitted: some waited for "
            "others to finish although the bound let them in"
        ) from None


def _test_never_past_the_bound(cls: type) -> None:
    """never more than max_tasks tasks in flight, and the rest still answered"""
    bound = int(cls.max_tasks)  # type: ignore[attr-defined]
    client = _FakeClient()
    executor = _make(cls, client)

    async def flood() -> list[TaskResult]:
        return list(await asyncio.gather(*(executor.run(_add, (i, 1)) for i in range(3 * bound))))

    results = run_sync(flood())
    assert [r.value for r in results] == [i + 1 for i in range(3 * bound)], (
        "a flood of requests got wrong or reordered values"
    )
    assert client.most <= bound, (
        f"{client.most} tasks were in flight at once; the bound is max_tasks = {bound}"
    )


hide(
    "lab00.q5",
    solution=SolutionBoundedExecutor,
    tests=[
        _test_returns_result,
        _test_one_task_per_request,
        _test_requests_overlap,
        _test_never_past_the_bound,
    ],
)
