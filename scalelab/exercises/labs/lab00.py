"""Lab 00, quickstart: what one Dask task per request costs, and what batching buys (public part).

Notebook ``00_quickstart.ipynb``. The grader sets ``max_batch``, the batch
size of the batched runs the student predicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scalelab.exercises.base import AnswerError
from scalelab.exercises.code import CodeExercise
from scalelab.exercises.context import Context, Param, Runs
from scalelab.exercises.live import LiveStep, ThroughputAtLeast
from scalelab.exercises.number import (
    AnswerExercise,
    NumberExercise,
    PredictionExercise,
    interval,
)
from scalelab.exercises.reflection import ReflectionExercise
from scalelab.exercises.registry import lab
from scalelab.service.executors import Executor

LAB = lab(
    "lab00",
    "00_quickstart.ipynb",
    "Quickstart: direct and batched execution",
    parameters={"max_batch": (2, 3, 4)},
)

DIRECT = Runs(
    "quickstart",
    where={"service.executor.kind": "direct"},
    what="direct runs of quickstart",
)
BATCHED = Runs(
    "quickstart",
    where={"service.executor.kind": "batched", "service.executor.max_batch": Param("max_batch")},
    what="batched runs of quickstart with the lab's max_batch",
)
CONCEPTS = "docs/course.md, 'Concepts'"

LAB.add(
    NumberExercise(
        "lab00.q1",
        """The bottleneck's time per request.

        In a direct run every request is one Dask task, and one part of the
        system is saturated while the rest waits for it. How many milliseconds
        of that bottleneck's time does one request take, in the run you pass?""",
        points=1,
        unit="ms",
        bounds=(0.0, None),
        hint=f"a saturated resource's busy time per request follows from one figure of the run "
        f"(the utilisation law; {CONCEPTS}).",
        usage='check("lab00.q1", ms, run=direct_runs[0])',
        context={"run": Runs("quickstart", where={"service.executor.kind": "direct"})},
    )
)

LAB.add(
    PredictionExercise(
        "lab00.q2",
        """Predict the batched throughput before you run it.

        The batched executor will run with ``max_batch`` set to the lab's
        parameter ``P.max_batch`` under the same 32 users. From your direct
        runs only, predict its throughput (requests/s) and record it with
        ``predict`` before running it; after the run, ``check`` compares.""",
        points=2,
        unit="requests/s",
        bounds=(0.0, None),
        hint=f"ask what limits the direct runs, and how many requests share that cost once "
        f"they are batched ({CONCEPTS}, 'The bottleneck').",
        usage='predict("lab00.q2", rps, direct=direct_runs); later '
        'check("lab00.q2", run=batched_runs)',
        predict_context={"direct": Runs("quickstart", where={"service.executor.kind": "direct"})},
        context={"run": BATCHED},
    )
)


def significance_shape(answer: Any, context: Context) -> dict[str, tuple[float, float]]:
    """``{"A/A": interval, "A/B": interval}``: each a (low, high) pair or a ``compare()`` result."""
    if not isinstance(answer, Mapping) or set(answer) != {"A/A", "A/B"}:
        raise AnswerError(
            'expected a mapping {"A/A": ..., "A/B": ...} holding the two intervals '
            "(compare() results or (low, high) pairs)"
        )
    return {k: interval(v, f"{k}: an interval (low, high)") for k, v in answer.items()}


LAB.add(
    AnswerExercise(
        "lab00.q3",
        """Is batching significantly faster? Two intervals, and an A/A control.

        With the repeats you ran, give the 95 % confidence interval of the
        difference in throughput (requests/s) between the batched runs and the
        direct runs (A/B, batched minus direct), and the same interval between
        the direct runs of even repeats and those of odd repeats (A/A: the
        same system against itself). Use ``scalelab.analysis.compare``. An
        A/A interval that excludes zero means the method, not the system,
        sees a difference.""",
        points=2,
        shape=significance_shape,
        hint=f"what is the unit of replication of these runs? ({CONCEPTS}, "
        "'Comparing two systems').",
        usage='check("lab00.q3", {"A/A": aa, "A/B": ab}, direct=direct_runs, batched=batched_runs)',
        context={
            "direct": Runs(
                "quickstart",
                where={"service.executor.kind": "direct"},
                min_runs=4,
                min_repeats=4,
                what="the four or more direct repeats",
            ),
            "batched": Runs(
                "quickstart",
                where={
                    "service.executor.kind": "batched",
                    "service.executor.max_batch": Param("max_batch"),
                },
                min_runs=2,
                min_repeats=2,
                what="the two or more batched repeats with the lab's max_batch",
            ),
        },
    )
)

LAB.add(
    ReflectionExercise(
        "lab00.q4",
        """Batching at low load.

        Batching raised throughput under load. What did it do to the latency
        of a single user, with either max_wait_ms, and why? When does a
        request wait for its batch, and what does the wait buy then? Two or
        three sentences.""",
        points=2,
    )
)


def _has_async_run(cls: type) -> None:
    """run() is a coroutine (``async def run(self, fn, args)``)"""
    import inspect

    run = getattr(cls, "run", None)
    assert run is not None and run is not Executor.run, "define run(self, fn, args)"
    assert inspect.iscoroutinefunction(run), (
        "run must be a coroutine: async def run(self, fn, args)"
    )


def _declares_its_bound(cls: type) -> None:
    """declares max_tasks, a whole number of at least 1"""
    bound = getattr(cls, "max_tasks", None)
    assert isinstance(bound, int) and bound >= 1, "give the class max_tasks = 8"


LAB.add(
    CodeExercise(
        "lab00.q5",
        """Write a bounded executor: one Dask task per request, at most max_tasks at once.

        Subclass ``scalelab.service.executors.Executor`` and implement
        ``async def run(self, fn, args)`` returning a ``TaskResult``: each
        request runs as its own Dask task, but no more than the class's
        ``max_tasks`` (8) tasks may be in flight at once; the requests beyond
        wait their turn in the service, so a burst cannot flood the cluster.
        The service constructs it as ``(client, config, metrics)``;
        ``self.client`` is an asynchronous Dask client, and ``run_task(fn,
        args)`` (in ``scalelab.service.workloads``) runs the work on a worker
        and returns ``(worker, value)``. Write the class to a file beside the
        notebook (``%%writefile my_executor.py``). Hidden tests check what it
        returns, how it uses Dask and how many tasks it lets run; then, plugged
        into the service under ``scenarios/executor_live.toml``, it must serve
        at least 80 % of the built-in ``direct`` executor's throughput.""",
        points=3,
        expects="class",
        base=Executor,
        public_tests=[_has_async_run, _declares_its_bound],
        live=LiveStep(
            field="service.executor.kind",
            spec="scenarios/executor_live.toml",
            compare_with="direct",
            outcome=ThroughputAtLeast(0.8),
            overrides={"duration_s": 3.0, "warmup_s": 0.0, "cooldown_s": 0.0},
        ),
        hint="Dask treats a function called twice with the same arguments as one task unless "
        "told otherwise; asyncio has a primitive that lets a fixed number of coroutines in at "
        "a time (docs.python.org, 'Synchronization Primitives').",
        usage='check("lab00.q5", MyExecutor, scheduler=..., out=OUT)',
    )
)
