"""Lab 05's exercises on runs of known behaviour: references, blanks, wrong models, made-up runs;
the breaker's and the retry policy's hidden tests on right and wrong components; the live
step's outcome on outage runs whose breaker behaved in known ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rundirs import T0

from exercises.cases import Case, check_cases
from exercises.runs import lab_run, session_of
from scalelab.analysis.load import Run
from scalelab.exercises.context import Prediction
from scalelab.exercises.instructor import ensure_hidden
from scalelab.exercises.params import Parameters
from scalelab.exercises.registry import get, get_lab
from scalelab.service.resilience import (
    CircuitBreaker,
    CountingBreaker,
    RetryPolicy,
    StandardRetryPolicy,
)

P = Parameters("lab05", {"error_rate": 0.3, "attempts": 3}, seed=0, smoke=False)
BEFORE = 1779926000.0  # a Unix time before the runs' started_at (2026-05-28)
AFTER = 1779929000.0
FAULT = (T0 + 2.0, T0 + 6.0)


def retry_requests(
    p: float, k: int, *, rate: float = 300.0, duration_s: float = 8.0, seed: int = 0
) -> pd.DataFrame:
    """Requests every 1/rate s taking 5 ms a try; while the fault is on each try fails at ``p``
    and a request tries up to ``k`` times (the retry layer without a budget)."""
    rng = np.random.default_rng(seed)
    n = int(rate * duration_s)
    start = T0 + np.arange(n) / rate
    on = (start >= FAULT[0]) & (start + 0.02 <= FAULT[1])
    fails = rng.random((n, k)) < p
    first_ok = np.where(fails.all(axis=1), k, fails.argmin(axis=1) + 1)
    attempts = np.where(on, first_ok, 1).astype(np.int64)
    ok = ~on | ~fails.all(axis=1)
    return pd.DataFrame(
        {
            "intended_start": start,
            "start": start,
            "latency_us": attempts * 5000,
            "latency_intended_us": attempts * 5000,
            "status": np.where(ok, 200, 500).astype(np.int32),
            "ok": ok,
            "name": pd.Series(["/task/io"] * n, dtype="string"),
            "method": pd.Series(["GET"] * n, dtype="string"),
            "bytes": np.full(n, 42, dtype=np.int64),
            "error": pd.Series(np.where(ok, "", "HTTPError('500')"), dtype="string"),
            "attempts": attempts,
        }
    )


def _retry_run(root: Path, name: str, requests: pd.DataFrame, **settings: Any) -> Run:
    return lab_run(
        root / name,
        "failure_retries",
        requests,
        settings={
            "faults.0.params.error_rate": 0.3,
            "service.retry.max_attempts": 3,
            **settings,
        },
        events=[(FAULT[0], "fault", "task", FAULT[1])],
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    root = tmp_path_factory.mktemp("lab05")
    return {
        "right": _retry_run(root, "000-r0", retry_requests(0.3, 3)),
        "budget": _retry_run(
            root, "001-r0", retry_requests(0.3, 3, seed=1), **{"service.retry.budget": True}
        ),
        "dask_retries": _retry_run(
            root, "004-r0", retry_requests(0.3, 3, seed=4), **{"service.executor.retries": 2}
        ),
        "other_rate": _retry_run(
            root,
            "002-r0",
            retry_requests(0.5, 3, seed=2),
            **{"faults.0.params.error_rate": 0.5},
        ),
        # Settings that claim the fault, records of a backend that never failed.
        "no_fault": _retry_run(root, "003-r0", retry_requests(0.0, 3, seed=3)),
    }


def _prediction_cases(
    exercise: str, r: dict[str, Run], truth: float, wrong: dict[str, Any]
) -> list[Case]:
    def case(role: str, name: str, value: Any, expect: str, says: str = "", **kw: Any) -> Case:
        made = kw.pop("made", BEFORE)
        run = kw.pop("run", r["right"])
        prediction = Prediction(value, made, None, {})
        return Case(
            exercise, role, name, None, {"run": run}, P, expect, says, prediction=prediction
        )

    cases = [
        case("reference", "theory", truth, "pass", "Measured"),
        case("blank", "ellipsis", ..., "not answered"),
        case("made-up context", "figures", truth, "fail", "mapping", run={"error_rate": truth}),
        case("made-up context", "with a budget", truth, "fail", "retry budget", run=r["budget"]),
        case("made-up context", "Dask retries too", truth, "fail", "budget", run=r["dask_retries"]),
        case(
            "made-up context",
            "another error rate",
            truth,
            "fail",
            "error rate",
            run=r["other_rate"],
        ),
        case("made-up context", "predicted after the run", truth, "fail", "after run", made=AFTER),
        case(
            "made-up context",
            "a run that did not fail",
            truth,
            "fail",
            "sampling error",
            run=r["no_fault"],
        ),
        Case(
            exercise,
            "made-up context",
            "not seen by the grader",
            None,
            {"run": r["right"]},
            P,
            "fail",
            "not made while the grader",
            prediction=Prediction(truth, BEFORE, None, {}),
            session=session_of(r["budget"]),
        ),
    ]
    for name, (value, says) in wrong.items():
        cases.append(case("wrong model", name, value, "fail", says))
    return cases


def _cases(r: dict[str, Run]) -> list[Case]:
    from scalelab_instructor.lab05 import SolutionBreaker, SolutionRetry

    p, k = 0.3, 3
    cases = _prediction_cases(
        "lab05.q1",
        r,
        p**k,
        {
            "one try": (p, "one try fails"),
            "retries only": (p ** (k - 1), "the first one too"),
            "any try fails": (1 - (1 - p) ** k, "at least one of k tries"),
        },
    )
    cases += _prediction_cases(
        "lab05.q2",
        r,
        1 + p + p**2,
        {
            "every try": (float(k), "every try fails"),
            "no limit": (1 / (1 - p), "without a limit"),
            "one retry": (1 + p, "one retry at most"),
            "retries as likely as the first": (1 + (k - 1) * p, "rarer each time"),
        },
    )

    def code(
        exercise: str, role: str, name: str, answer: Any, expect: str, says: str = "", **kw: Any
    ) -> Case:
        return Case(exercise, role, name, answer, {}, P, expect, says, **kw)

    cases += [
        code("lab05.q3", "reference", "solution", SolutionBreaker, "pass", "hidden tests"),
        code("lab05.q3", "reference", "a rate breaker", RateBreaker, "pass", "hidden tests"),
        code("lab05.q3", "blank", "not implemented", BlankBreaker, "not answered"),
        code("lab05.q3", "wrong model", "never opens", NeverOpens, "fail", "outage"),
        code("lab05.q3", "wrong model", "opens on one failure", Jumpy, "fail", "too easily"),
        code("lab05.q3", "wrong model", "never closes", NeverCloses, "fail", "came back"),
        code("lab05.q3", "wrong model", "a fixed 5 s timer", FiveSeconds, "fail", "came back"),
        code(
            "lab05.q3", "wrong model", "no probe limit", EveryoneProbes, "fail", "half_open_probes"
        ),
        code(
            "lab05.q3", "wrong model", "a verdictless call counts", NoneIsFailure, "fail", "verdict"
        ),
        code("lab05.q3", "wrong model", "the built-in breaker", CountingBreaker, "fail", "doubles"),
        code(
            "lab05.q3",
            "wrong model",
            "a wait never reset",
            _never_reset(SolutionBreaker),
            "fail",
            "from open_s",
        ),
        code("lab05.q3", "made-up context", "a function", lambda: None, "fail", "expected a class"),
        code("lab05.q3", "made-up context", "not a breaker", NotABreaker, "fail", "must subclass"),
        code(
            "lab05.q3",
            "made-up context",
            "the instructor's class under grading",
            SolutionBreaker,
            "fail",
            "instructor's reference",
            session=session_of(),
        ),
        code("lab05.q4", "reference", "solution", SolutionRetry, "pass", "hidden tests"),
        code("lab05.q4", "blank", "not implemented", BlankRetry, "not answered"),
        code("lab05.q4", "wrong model", "no budget", NoBudget, "fail", "retry storm"),
        code("lab05.q4", "wrong model", "the built-in budget", StandardRetryPolicy, "fail", "20 %"),
        code("lab05.q4", "wrong model", "a small budget", SmallBudget, "fail", "succeeded"),
        code("lab05.q4", "wrong model", "never retries", NeverRetry, "fail", "succeeded"),
        code("lab05.q4", "wrong model", "saves up tokens", SavesUp, "fail", "saved up"),
        code("lab05.q4", "wrong model", "gives up for good", GivesUpForGood, "fail", "for good"),
        code("lab05.q4", "made-up context", "a function", lambda: None, "fail", "expected a class"),
        code("lab05.q4", "made-up context", "not a policy", NotABreaker, "fail", "must subclass"),
        code(
            "lab05.q4",
            "made-up context",
            "the instructor's class under grading",
            SolutionRetry,
            "fail",
            "instructor's reference",
            session=session_of(),
        ),
        code(
            "lab05.q5",
            "reference",
            "model answer",
            "Retries without a budget multiply the calls to a failing backend; a breaker stops "
            "them and a budget caps them to a share of requests.",
            "needs review",
        ),
        code("lab05.q5", "blank", "empty", "", "not answered"),
        code(
            "lab05.q5",
            "wrong model",
            "too short to explain",
            "Retries are bad.",
            "fail",
            "too short",
        ),
        Case(
            "lab05.q5",
            "made-up context",
            "with a run",
            "Retries without a budget multiply the calls to a failing backend; a breaker stops "
            "them and a budget caps them to a share of requests.",
            {"run": r["right"]},
            P,
            "needs review",
        ),
    ]
    return cases


# --- breakers ---------------------------------------------------------------------------


class BlankBreaker(CircuitBreaker):
    """As released: the bodies still raise."""

    def allow(self, now: float) -> bool:
        raise NotImplementedError

    def record(self, ok: bool | None, now: float) -> None:
        raise NotImplementedError


class NeverOpens(CircuitBreaker):
    """Lets everything through, whatever happens."""

    def allow(self, now: float) -> bool:
        return True

    def record(self, ok: bool | None, now: float) -> None:
        pass


class _Simple(CircuitBreaker):
    """The docs' example breaker, with knobs the wrong models turn."""

    open_for: float | None = None
    limit_probes = True
    none_fails = False
    threshold: int | None = None
    reopen = True

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.failures, self.opened_at, self.probes = 0, 0.0, 0

    def allow(self, now: float) -> bool:
        wait = self.params.open_s if self.open_for is None else self.open_for
        if self.state == "open" and self.reopen and now - self.opened_at >= wait:
            self.state, self.probes = "half_open", 0
        if self.state == "half_open" and self.limit_probes:
            if self.probes >= self.params.half_open_probes:
                return False
            self.probes += 1
        return self.state != "open"

    def record(self, ok: bool | None, now: float) -> None:
        if self.state == "half_open":
            self.probes = max(0, self.probes - 1)
        if ok is None and not self.none_fails:
            return
        if ok:
            self.failures, self.state = 0, "closed"
            return
        self.failures += 1
        threshold = self.params.failures if self.threshold is None else self.threshold
        if self.state == "half_open" or self.failures >= threshold:
            self.state, self.opened_at = "open", now


class Jumpy(_Simple):
    threshold = 1


class NeverCloses(_Simple):
    reopen = False


class FiveSeconds(_Simple):
    open_for = 5.0


class EveryoneProbes(_Simple):
    limit_probes = False


class NoneIsFailure(_Simple):
    none_fails = True


class RateBreaker(CircuitBreaker):
    """Another right answer: opens when ``failures`` of the last 2 x ``failures`` calls failed;
    its wait doubles on a failed probe, kept as a count of doublings."""

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.recent: list[bool] = []
        self.opened_at, self.probes, self.good, self.doublings = 0.0, 0, 0, 0

    def allow(self, now: float) -> bool:
        wait = self.params.open_s * 2 ** min(self.doublings, 3)
        if self.state == "open" and now - self.opened_at >= wait:
            self.state, self.probes, self.good = "half_open", 0, 0
        if self.state == "half_open":
            if self.probes >= self.params.half_open_probes:
                return False
            self.probes += 1
        return self.state != "open"

    def record(self, ok: bool | None, now: float) -> None:
        if self.state == "half_open":
            self.probes -= 1
            if ok is None:
                return
            if not ok:
                self.state, self.opened_at = "open", now
                self.doublings += 1
            else:
                self.good += 1
                if self.good >= self.params.successes:
                    self.state, self.recent, self.doublings = "closed", [], 0
            return
        if ok is None:
            return
        self.recent = [*self.recent[-(2 * self.params.failures - 1) :], ok]
        if self.recent.count(False) >= self.params.failures:
            self.state, self.opened_at = "open", now


def _never_reset(solution: type) -> type:
    """The reference breaker, but closing keeps the wait it had grown to."""

    class NeverReset(solution):  # type: ignore[valid-type, misc]
        def record(self, ok: bool | None, now: float) -> None:
            wait = self.wait
            super().record(ok, now)
            if self.state == "closed":
                self.wait = wait

    NeverReset.__module__ = __name__
    return NeverReset


class NotABreaker:
    """The right methods, derived from nothing."""

    def allow(self, now: float) -> bool:
        return True

    def record(self, ok: bool | None, now: float) -> None:
        pass

    def retry_after(self, attempt: int, status: int) -> float | None:
        return None


# --- retry policies ---------------------------------------------------------------------


class BlankRetry(RetryPolicy):
    """As released."""

    def retry_after(self, attempt: int, status: int) -> float | None:
        raise NotImplementedError


class NoBudget(RetryPolicy):
    """Every failure retried at once, up to max_attempts."""

    def retry_after(self, attempt: int, status: int) -> float | None:
        return 0.0


class NeverRetry(RetryPolicy):
    def retry_after(self, attempt: int, status: int) -> float | None:
        return None


class SmallBudget(StandardRetryPolicy):
    """Finagle's budget, small enough for an outage: too small for rare errors."""

    def __init__(self, params: Any) -> None:
        super().__init__(params.model_copy(update={"budget_ratio": 0.05, "budget_min_per_s": 0}))


class SavesUp(RetryPolicy):
    """A token per success, without a cap: a healthy spell pays for a retry storm."""

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.tokens = 10.0

    def on_result(self, attempt: int, ok: bool) -> None:
        self.tokens += 0.5 if ok else -1.0

    def retry_after(self, attempt: int, status: int) -> float | None:
        return 0.0 if self.tokens > 5 else None


class GivesUpForGood(RetryPolicy):
    """Stops retrying after ten failures in a row, and never starts again."""

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.in_a_row = 0

    def on_result(self, attempt: int, ok: bool) -> None:
        if self.in_a_row < 10:
            self.in_a_row = 0 if ok else self.in_a_row + 1

    def retry_after(self, attempt: int, status: int) -> float | None:
        return None if self.in_a_row >= 10 else 0.0


ensure_hidden()


@pytest.fixture(scope="module")
def cases(runs: dict[str, Run]) -> list[Case]:
    return _cases(runs)


@pytest.mark.parametrize("exercise", [e.id for e in get_lab("lab05").exercises])
def test_exercise(exercise: str, cases: list[Case]) -> None:
    check_cases(exercise, cases)


# --- the live step's outcome, on outage runs of known behaviour ---------------------------

OUTAGE = (T0 + 0.6, T0 + 1.6)


def outage_requests(calls_backend: float, fails_after_s: float, seed: int = 0) -> pd.DataFrame:
    """Four users' requests over 4.5 s around a 1 s outage: during it, a share
    ``calls_backend`` reach the backend (and fail), the rest fail fast; after it, requests
    fail until ``fails_after_s`` past its end."""
    rng = np.random.default_rng(seed)
    n = 4500
    start = T0 + np.sort(rng.uniform(0.0, 4.5, n))
    down = (start >= OUTAGE[0]) & (start < OUTAGE[1])
    called = np.where(down, rng.random(n) < calls_backend, True)
    ok = ~down & (start >= OUTAGE[1] + fails_after_s)
    attempts = called.astype(np.int64)
    lat = np.where(called, 5000, 200).astype(np.int64)
    return pd.DataFrame(
        {
            "intended_start": start,
            "start": start,
            "latency_us": lat,
            "latency_intended_us": lat,
            "status": np.where(ok, 200, np.where(called, 500, 503)).astype(np.int32),
            "ok": ok,
            "name": pd.Series(["/task/io"] * n, dtype="string"),
            "method": pd.Series(["GET"] * n, dtype="string"),
            "bytes": np.full(n, 42, dtype=np.int64),
            "error": pd.Series(np.where(ok, "", "HTTPError"), dtype="string"),
            "attempts": attempts,
        }
    )


@pytest.mark.parametrize(
    ("calls_backend", "fails_after_s", "passes", "says"),
    [
        (0.02, 0.3, True, "called it"),
        (1.0, 0.0, False, "kept calling"),
        (0.02, 3.0, False, "backend's return"),
        (0.02, 2.2, False, "backend's return"),
    ],
    ids=["fails fast, recovers", "never opens", "never closes", "recovers too late"],
)
def test_live_outcome(
    tmp_path: Path, calls_backend: float, fails_after_s: float, passes: bool, says: str
) -> None:
    run = lab_run(
        tmp_path / "000-r0",
        "failure_breaker",
        outage_requests(calls_backend, fails_after_s),
        events=[(OUTAGE[0], "fault", "task", OUTAGE[1])],
    )
    step = get("lab05.q3").live
    verdict = step.judge(run, None)
    assert verdict.passed is passes, verdict.message
    assert says in verdict.message


def test_live_step_spec_resolves_and_keeps_its_outage_inside_the_short_run() -> None:
    from scalelab.experiment.spec import load_spec

    step = get("lab05.q3").live
    spec = load_spec(step.spec_path(), overrides=dict(step.overrides))
    fault = spec.faults[0]
    assert fault.until_s is not None
    assert fault.until_s + 2.0 < spec.duration_s, "no time left to see the recovery"
