"""Lab 00's exercises on runs of known behaviour: references, blanks, wrong models, made-up runs."""

from __future__ import annotations

from typing import Any

import pytest

from exercises.cases import Case, check_cases
from exercises.runs import closed_loop_requests, lab_run, session_of
from scalelab.analysis import compare
from scalelab.analysis.load import Run
from scalelab.exercises.context import Prediction
from scalelab.exercises.instructor import ensure_hidden
from scalelab.exercises.params import Parameters
from scalelab.exercises.registry import get_lab
from scalelab.service.executors import Executor, TaskResult
from scalelab.service.workloads import run_task

P = Parameters("lab00", {"max_batch": 3}, seed=0, smoke=False)
BEFORE = 1779926000.0  # a Unix time before the runs' started_at (2026-05-28)
AFTER = 1779929000.0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Run]]:
    root = tmp_path_factory.mktemp("lab00")
    direct = [
        lab_run(
            root / f"{i:03d}-kind=direct-r{i}",
            "quickstart",
            closed_loop_requests(200 + 12 * i, mean_ms=150, seed=i),
            settings={"service.executor.kind": "direct"},
        )
        for i in range(4)
    ]
    batched = [
        lab_run(
            root / f"{10 + i:03d}-kind=batched-r{i}",
            "quickstart",
            closed_loop_requests(520 + 15 * i, mean_ms=60, seed=10 + i),
            settings={"service.executor.kind": "batched", "service.executor.max_batch": 3},
        )
        for i in range(2)
    ]
    bigger = [
        lab_run(
            root / f"{20 + i:03d}-kind=batched-r{i}",
            "quickstart",
            closed_loop_requests(600, mean_ms=50, seed=20 + i),
            settings={"service.executor.kind": "batched", "service.executor.max_batch": 4},
        )
        for i in range(2)
    ]
    return {"direct": direct, "batched": batched, "max_batch_4": bigger}


def _cases(r: dict[str, list[Run]]) -> list[Case]:
    direct, batched = r["direct"], r["batched"]
    x_direct = sum(run.summary["throughput_rps"] for run in direct) / len(direct)
    one = direct[0]

    def q1(role: str, name: str, answer: Any, expect: str, says: str = "", **ctx: Any) -> Case:
        ctx = ctx or {"run": one}
        session = ctx.pop("session", None)
        return Case("lab00.q1", role, name, answer, ctx, P, expect, says, session=session)

    def q2(role: str, name: str, value: Any, expect: str, says: str = "", **kw: Any) -> Case:
        made = kw.pop("made", BEFORE)
        pred_ctx = kw.pop("direct", direct)
        ctx = {"run": kw.pop("run", batched)}
        prediction = Prediction(value, made, None, {"direct": pred_ctx})
        return Case("lab00.q2", role, name, None, ctx, P, expect, says, prediction=prediction)

    even = [run for run in direct if run.repeat % 2 == 0]
    odd = [run for run in direct if run.repeat % 2 == 1]
    aa = compare(even, odd, metric="throughput", over="repeats")
    ab = compare(direct, batched, metric="throughput", over="repeats")
    aa_req = compare(even, odd, metric="throughput", over="requests")
    ab_req = compare(direct, batched, metric="throughput", over="requests")
    both = {"direct": direct, "batched": batched}

    from scalelab_instructor.lab00 import SolutionBoundedExecutor

    return [
        q1("reference", "ms per request", 1000 / one.summary["throughput_rps"], "pass"),
        q1("blank", "ellipsis", ..., "not answered"),
        q1("wrong model", "mean latency", one.summary["mean_ms"], "fail", "waiting in line"),
        q1("wrong model", "throughput", one.summary["throughput_rps"], "fail"),
        q1(
            "made-up context",
            "figures",
            5.0,
            "fail",
            "mapping of figures",
            run={"throughput_rps": 200},
        ),
        q1(
            "made-up context",
            "batched run",
            1000 / batched[0].summary["throughput_rps"],
            "fail",
            "this check reads",
            run=batched[0],
        ),
        q1(
            "made-up context",
            "not seen by the grader",
            1000 / one.summary["throughput_rps"],
            "fail",
            "not made while the grader",
            run=one,
            session=session_of(direct[1:]),
        ),
        q2("reference", "B times direct", 3 * x_direct, "pass", "Measured"),
        q2("blank", "ellipsis", ..., "not answered"),
        q2("wrong model", "same as direct", x_direct, "fail", "what the direct executor served"),
        q2("wrong model", "divided", x_direct / 3, "fail", "more requests per task"),
        q2(
            "made-up context",
            "figures",
            3 * x_direct,
            "fail",
            "mapping",
            direct={"throughput_rps": x_direct},
        ),
        q2(
            "made-up context",
            "another batch size",
            3 * x_direct,
            "fail",
            "max_batch",
            run=r["max_batch_4"],
        ),
        q2(
            "made-up context",
            "predicted after the run",
            3 * x_direct,
            "fail",
            "after run",
            made=AFTER,
        ),
        Case(
            "lab00.q3", "reference", "compare over repeats", {"A/A": aa, "A/B": ab}, both, P, "pass"
        ),
        Case(
            "lab00.q3",
            "reference",
            "as pairs",
            {"A/A": (aa.ci_low, aa.ci_high), "A/B": (ab.ci_low, ab.ci_high)},
            both,
            P,
            "pass",
        ),
        Case("lab00.q3", "blank", "ellipses", {"A/A": ..., "A/B": ...}, both, P, "not answered"),
        Case(
            "lab00.q3",
            "wrong model",
            "over requests",
            {"A/A": aa_req, "A/B": ab_req},
            both,
            P,
            "fail",
            "independent observation",
        ),
        Case("lab00.q3", "wrong model", "no A/A", {"A/B": ab}, both, P, "fail", "mapping"),
        Case(
            "lab00.q3",
            "made-up context",
            "two direct runs",
            {"A/A": aa, "A/B": ab},
            {"direct": direct[:2], "batched": batched},
            P,
            "fail",
            "at least 4",
        ),
        Case(
            "lab00.q3",
            "made-up context",
            "made-up intervals",
            {"A/A": (-1.0, 1.0), "A/B": (300.0, 330.0)},
            both,
            P,
            "fail",
            "not what your runs give",
        ),
        Case(
            "lab00.q4",
            "reference",
            "model answer",
            "With one user a batch never fills, so every "
            "request waits the whole max_wait_ms for company before its task is sent, and "
            "latency rises by that wait.",
            {},
            P,
            "needs review",
        ),
        Case("lab00.q4", "blank", "empty", "", {}, P, "not answered"),
        Case(
            "lab00.q4",
            "wrong model",
            "too short to explain",
            "It got slower.",
            {},
            P,
            "fail",
            "too short",
        ),
        Case(
            "lab00.q4",
            "made-up context",
            "with a run",
            "Batching adds a wait at low load: each "
            "request waits for a batch that never fills, up to max_wait_ms, so latency rises.",
            {"run": direct[0]},
            P,
            "needs review",
        ),
        Case(
            "lab00.q5",
            "reference",
            "solution",
            SolutionBoundedExecutor,
            {},
            P,
            "pass",
            "hidden tests",
        ),
        Case("lab00.q5", "blank", "not implemented", BlankExecutor, {}, P, "not answered"),
        Case(
            "lab00.q5",
            "wrong model",
            "merges equal requests",
            MergingExecutor,
            {},
            P,
            "fail",
            "equal requests",
        ),
        Case("lab00.q5", "wrong model", "one at a time", LockedExecutor, {}, P, "fail", "waited"),
        Case("lab00.q5", "wrong model", "no bound", UnboundedExecutor, {}, P, "fail", "in flight"),
        Case(
            "lab00.q5",
            "made-up context",
            "a function",
            lambda: None,
            {},
            P,
            "fail",
            "expected a class",
        ),
        Case(
            "lab00.q5",
            "made-up context",
            "not an executor",
            NotAnExecutor,
            {},
            P,
            "fail",
            "must subclass",
        ),
        Case(
            "lab00.q5",
            "made-up context",
            "the instructor's class under grading",
            SolutionBoundedExecutor,
            {},
            P,
            "fail",
            "instructor's reference",
            session=session_of(),
        ),
    ]


class BlankExecutor(Executor):
    """As released: the body still raises."""

    max_tasks = 8

    async def run(self, fn: Any, args: tuple[Any, ...]) -> TaskResult:
        raise NotImplementedError


class MergingExecutor(Executor):
    """Leaves Dask to merge equal calls."""

    max_tasks = 8

    async def run(self, fn: Any, args: tuple[Any, ...]) -> TaskResult:
        worker, value = await self.client.submit(run_task, fn, args)
        return TaskResult(value, worker, 1)


class LockedExecutor(Executor):
    """Right results, one request at a time."""

    max_tasks = 8

    def __init__(self, *args: Any) -> None:
        import asyncio

        super().__init__(*args)
        self.lock = asyncio.Lock()

    async def run(self, fn: Any, args: tuple[Any, ...]) -> TaskResult:
        async with self.lock:
            worker, value = await self.client.submit(run_task, fn, args, pure=False)
        return TaskResult(value, worker, 1)


class UnboundedExecutor(Executor):
    """Right results, every request at once: the direct executor with a bound it ignores."""

    max_tasks = 8

    async def run(self, fn: Any, args: tuple[Any, ...]) -> TaskResult:
        worker, value = await self.client.submit(run_task, fn, args, pure=False)
        return TaskResult(value, worker, 1)


class NotAnExecutor:
    """Has a run method, derives from nothing."""

    async def run(self, fn: Any, args: tuple[Any, ...]) -> Any:
        return None


ensure_hidden()


@pytest.fixture(scope="module")
def cases(runs: dict[str, list[Run]]) -> list[Case]:
    return _cases(runs)


@pytest.mark.parametrize("exercise", [e.id for e in get_lab("lab00").exercises])
def test_exercise(exercise: str, cases: list[Case]) -> None:
    check_cases(exercise, cases)
