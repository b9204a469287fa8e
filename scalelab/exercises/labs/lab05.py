"""Lab 05, failure: retries against random errors, a circuit breaker, a retry policy (public part).

Notebook ``05_failure.ipynb``. The grader sets the error rate of the faulty
backend (``error_rate``) and how many tries the retry layer makes
(``attempts``); the student predicts what the retries buy and cost, then
writes a breaker that runs in the service and a retry policy that must hold
up both under random errors and when everything fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.exercises.base import Verdict
from scalelab.exercises.code import CodeExercise
from scalelab.exercises.context import Param, Runs
from scalelab.exercises.live import LiveStep, Outcome
from scalelab.exercises.number import PredictionExercise
from scalelab.exercises.reflection import ReflectionExercise
from scalelab.exercises.registry import lab
from scalelab.service.resilience import CircuitBreaker, RetryPolicy

if TYPE_CHECKING:
    from scalelab.analysis.load import Run

LAB = lab(
    "lab05",
    "05_failure.ipynb",
    "Failure: retries, circuit breakers and retry budgets",
    parameters={"error_rate": (0.2, 0.3, 0.4, 0.5), "attempts": (2, 3, 4)},
)
CONCEPTS = "docs/course.md, 'Concepts'"

RETRIES = Runs(
    "failure_retries",
    where={
        "faults.0.action": "task",
        "faults.0.params.workers": ["*"],
        "faults.0.params.error_rate": Param("error_rate"),
        "service.retry.max_attempts": Param("attempts"),
        "service.retry.budget": False,
        "service.retry.policy": "",
        "service.stack": ["admission", "retry", "faults", "cache"],
        "service.executor.retries": 0,
    },
    what="a failure_retries run at the lab's error rate and attempts, without a retry budget",
)

LAB.add(
    PredictionExercise(
        "lab05.q1",
        """Predict the error rate that retries leave.

        From t = 2 s to 6 s of ``scenarios/failure_retries.toml`` every task
        fails at random, with probability ``P.error_rate``, on every worker;
        the service tries each request up to ``P.attempts`` times in all, at
        once, without a budget. What share of the requests that arrive while
        the fault is on (and are answered before it ends) still fail? Record
        it with ``predict`` before the run; ``check`` compares it with the
        theory and shows what the run measured.""",
        points=2,
        bounds=(0.0, 1.0),
        hint=f"each try is an independent draw; when does a request fail in the end? "
        f"({CONCEPTS}, 'Retries and amplification').",
        usage='predict("lab05.q1", share); later check("lab05.q1", run=retry_run)',
        context={"run": RETRIES},
    )
)

LAB.add(
    PredictionExercise(
        "lab05.q2",
        """Predict the retry amplification: tries per request during the fault.

        Same run, same requests: how many tries does a request take on
        average while the fault is on (the ``attempts`` column of the
        requests, ``X-Attempts`` of each answer)? That is the load the
        retries put on the backend, per request the clients sent.""",
        points=2,
        bounds=(1.0, None),
        hint=f"a request makes its n-th try only when every try before it failed; add up "
        f"the chances ({CONCEPTS}, 'Retries and amplification').",
        usage='predict("lab05.q2", tries); later check("lab05.q2", run=retry_run)',
        context={"run": RETRIES},
    )
)


@dataclass(frozen=True)
class FailsFastAndRecovers(Outcome):
    """While the backend is down, at most ``max_backend_share`` of the requests that arrive
    after ``settle_s`` reach it; every request from ``recover_s`` after it is back succeeds."""

    max_backend_share: float = 0.2
    settle_s: float = 0.3
    recover_s: float = 2.0

    def describe(self) -> str:
        return (
            f"failing fast while the backend is down (at most {self.max_backend_share:.0%} of "
            f"the requests calling it) and no errors from {self.recover_s:g} s after it is back"
        )

    def judge(self, mine: Run, baseline: Run | None, step: LiveStep) -> Verdict:
        from scalelab.analysis.failure import fault_spans

        spans = fault_spans(mine)
        if spans.empty:
            return Verdict(False, "the live run recorded no fault, so the outage cannot be judged")
        start, end = float(spans["start"].iloc[0]), float(spans["end"].iloc[0])
        req = mine.measured_requests
        down = req[(req["start"] >= start + self.settle_s) & (req["start"] < end)]
        back = req[req["start"] >= end + self.recover_s]
        if len(down) == 0 or len(back) == 0:
            return Verdict(
                False,
                f"the live run has no requests {'during' if len(down) == 0 else 'after'} the "
                "outage to judge from; the machine may be too busy: try again",
            )
        share = float((down["attempts"] > 0).mean())
        errors = float((~back["ok"].astype(bool)).mean())
        text = (
            f"in the service, while the backend was down, {share:.0%} of {len(down)} requests "
            "called it; "
            f"from {self.recover_s:g} s after it was back, {errors:.1%} of {len(back)} failed"
        )
        if share > self.max_backend_share:
            return Verdict(
                False,
                f"{text}: it kept calling a backend that was down (at most "
                f"{self.max_backend_share:.0%} may); when should it stop?",
            )
        if errors > 0.01:
            return Verdict(
                False, f"{text}: it did not let the backend's return through; how does it learn?"
            )
        return Verdict(True, f"{text}.")


def _is_a_breaker(cls: type) -> None:
    """implements allow() and record()"""
    for name in ("allow", "record"):
        method = getattr(cls, name, None)
        assert method is not None and method is not getattr(CircuitBreaker, name), (
            f"define {name}(self, ...)"
        )


LAB.add(
    CodeExercise(
        "lab05.q3",
        """A circuit breaker of your own, in the service.

        Subclass ``scalelab.service.resilience.CircuitBreaker``: the breaker
        layer asks ``allow(now)`` before each call to the backend (False
        answers 503 at once, without calling it) and tells ``record(ok, now)``
        how each call it allowed ended (``ok`` None: no verdict). Keep
        ``state`` ("closed", "open", "half_open") and honour the layer's
        parameters (``self.params``: ``failures``, ``open_s``,
        ``half_open_probes``, ``successes``), and back off: each failed probe
        doubles how long it stays open next (up to 8 x ``open_s``; closing
        starts again from ``open_s``). Hidden tests drive it with a
        clock of their own; then, plugged into the service as
        ``breaker.policy`` under ``scenarios/failure_breaker.toml``, it must
        fail fast while the backend is down and let every request succeed
        again from 2 s after the backend is back. Write it to
        ``my_breaker.py`` beside the notebook.""",
        points=3,
        expects="class",
        base=CircuitBreaker,
        public_tests=[_is_a_breaker],
        live=LiveStep(
            field="service.breaker.policy",
            spec="scenarios/failure_breaker.toml",
            compare_with="consecutive",
            outcome=FailsFastAndRecovers(),
            overrides={"duration_s": 4.5, "warmup_s": 0.0, "cooldown_s": 0.0},
            max_error_rate=1.0,  # the outage fails requests by design; the outcome judges them
        ),
        hint=f"three states, and a timer; what may pass while you do not know whether the "
        f"backend is back? ({CONCEPTS}, 'Circuit breakers').",
        usage='check("lab05.q3", MyBreaker, scheduler=SCHEDULER, out=OUT)',
    )
)


def _is_a_policy(cls: type) -> None:
    """implements retry_after()"""
    method = getattr(cls, "retry_after", None)
    assert method is not None and method is not RetryPolicy.retry_after, (
        "define retry_after(self, attempt, status)"
    )


LAB.add(
    CodeExercise(
        "lab05.q4",
        """A retry policy that helps when errors are rare and stays quiet when all fail.

        Subclass ``scalelab.service.resilience.RetryPolicy``. The service's
        retry layer (``retry.max_attempts = 4``) tells it of each request
        (``on_request()``) and each try's outcome (``on_result(attempt,
        ok)``), and asks ``retry_after(attempt, status)`` after a failed try:
        seconds to wait, or None to give up. Hidden tests run it in that layer
        against a backend that fails at random: at a 20 % error rate at least
        99 % of requests must succeed with at most 1.3 tries per request;
        when every call fails, at most 1.1 tries per request; and when the
        backend is healthy again after failing, at least 99 % again. Write it
        to ``my_retry.py`` beside the notebook.""",
        points=3,
        expects="class",
        base=RetryPolicy,
        public_tests=[_is_a_policy],
        hint=f"retry more only while retries are working; what tells you they are not? "
        f"({CONCEPTS}, 'Retry budgets').",
        usage='check("lab05.q4", MyRetry)',
    )
)

LAB.add(
    ReflectionExercise(
        "lab05.q5",
        """Retries, breakers and the backend's recovery.

        A backend that is down because it is overloaded must shed load to
        come back. What do retries without a budget do to it, and what do a
        breaker and a retry budget each change? Two or three sentences.""",
        points=2,
    )
)
