"""Exercises of lab 01, latency and throughput: coordinated omission, Little's law, the USL.

Notebook: ``notebooks/solutions/01_latency_and_throughput.ipynb``. Expected
values come from theory or from the student's own run (``run=``), so the
checks hold whatever the machine measured.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from scalelab.exercises.base import Context
from scalelab.exercises.code import CodeExercise
from scalelab.exercises.context import attribute, figure
from scalelab.exercises.number import Mistake, NumberExercise
from scalelab.exercises.reflection import ReflectionExercise
from scalelab.exercises.registry import register
from scalelab.exercises.result import CheckResult

LAB_TITLE = "Latency and throughput"


def _stalled(c: Context) -> float:
    return figure(c, "rate") * figure(c, "stall_s")


register(
    NumberExercise(
        "lab01.q1",
        """A stall in an open loop: how many requests arrive while the service is stalled?

        An open-loop load sends ``rate`` requests per second whatever the
        responses do. The service stalls for ``stall_s`` seconds. How many
        requests arrive during the stall, and so wait behind it?""",
        _stalled,
        rel_tol=0.02,
        abs_tol=1.0,
        unit="requests",
        hint="in an open loop arrivals do not wait for responses.",
        usage='check("lab01.q1", n, rate=..., stall_s=...)',
        mistakes=[
            Mistake(
                lambda c: figure(c, "users"),
                "that is what a closed loop has in flight: its users wait for their "
                "responses, so it stops sending. The open loop keeps arriving.",
            )
        ],
        example_context=lambda: {"rate": 250.0, "stall_s": 1.5, "users": 16},
    )
)


def _lambda(c: Context) -> float:
    return figure(c, "throughput_rps", from_run="throughput_rps")


def _w_s(c: Context) -> float:
    return figure(c, "mean_ms", from_run="mean_ms") / 1000.0


register(
    NumberExercise(
        "lab01.q2",
        """Little's law: how many requests were in the system on average?

        From your run's throughput λ (requests/s) and mean latency W, compute L,
        the mean number of requests in flight. Pass the run you measured
        (``run=``) or its figures (``throughput_rps=``, ``mean_ms=``).""",
        lambda c: _lambda(c) * _w_s(c),
        rel_tol=0.05,
        unit="requests",
        hint="L = λW, with λ and W in the same unit of time.",
        usage='check("lab01.q2", L, run=run)',
        mistakes=[
            Mistake(
                lambda c: _lambda(c) * figure(c, "p50_ms", from_run="p50_ms") / 1000.0,
                "Little's law holds for the mean latency, not the median.",
            ),
            Mistake(
                lambda c: _lambda(c) / _w_s(c),
                "λ/W is not it: requests per second times seconds per request.",
            ),
        ],
        example_context=lambda: {"run": {"throughput_rps": 412.7, "mean_ms": 38.9, "p50_ms": 31.2}},
    )
)


def _knee(c: Context) -> float:
    sigma = attribute(c, "sigma", "fit")
    kappa = attribute(c, "kappa", "fit")
    if kappa <= 0:
        return math.inf
    return math.sqrt((1.0 - sigma) / kappa)


class KneeExercise(NumberExercise):
    """The USL knee, which is infinite when the fit finds no crosstalk (κ = 0).

    A real sweep that never turns down fits κ = 0; the knee is then beyond any
    concurrency, and ``math.inf`` is the right answer rather than a malformed one.
    """

    def judge(self, answer: Any, context: Context, live: bool = False) -> CheckResult:
        """Accept ``math.inf`` exactly when the knee is unbounded; otherwise as a number."""
        if isinstance(answer, numbers.Real) and not isinstance(answer, bool):
            target = self.expected_value(context)
            if math.isinf(target):
                if math.isinf(float(answer)) and float(answer) > 0:
                    return self.result(
                        "pass", "correct: with κ = 0 throughput never turns down (no knee)."
                    )
                return self.result(
                    "fail",
                    self.with_hint(
                        f"{float(answer):.4g} is not it: this fit has κ = 0.",
                        "without crosstalk the curve only flattens; where is its peak then?",
                    ),
                )
        return super().judge(answer, context, live)


register(
    KneeExercise(
        "lab01.q3",
        """Fit the USL and name the knee: at what concurrency does throughput peak?

        Fit the Universal Scalability Law to your concurrency sweep
        (``scalelab.analysis.fit_usl``) and compute, from σ and κ, the
        concurrency N* past which adding users lowers throughput (``math.inf``
        when the fit finds κ = 0). Pass the fit (``fit=``) or its coefficients
        (``sigma=``, ``kappa=``).""",
        _knee,
        rel_tol=0.05,
        unit="concurrent requests",
        hint="X(N) peaks where its derivative is zero; the answer has a square root.",
        usage='check("lab01.q3", n_star, fit=fit)',
        mistakes=[
            Mistake(
                lambda c: (1.0 - attribute(c, "sigma", "fit")) / attribute(c, "kappa", "fit"),
                "close: the knee grows with the square root of that ratio.",
            ),
            Mistake(
                lambda c: 1.0 / attribute(c, "sigma", "fit"),
                "contention (σ) alone only flattens the curve; the knee comes from crosstalk (κ).",
            ),
        ],
        example_context=lambda: {"sigma": 0.071, "kappa": 0.0043},
    )
)


def solution_p99_of_both(a: Any, b: Any) -> float:
    """The reference answer to lab01.q4: the p99 of the two samples together."""
    return float(np.percentile(np.concatenate([np.asarray(a), np.asarray(b)]), 99))


def _expect_p99(fn: Callable[[Any, Any], float], a: np.ndarray, b: np.ndarray) -> None:
    got = fn(a, b)
    assert isinstance(got, int | float | np.floating), (
        f"expected a number, got {type(got).__name__}"
    )
    truth = solution_p99_of_both(a, b)
    averaged = (np.percentile(a, 99) + np.percentile(b, 99)) / 2
    if abs(float(got) - averaged) <= 0.01 * averaged and abs(truth - averaged) > 0.05 * truth:
        raise AssertionError(
            "it looks like an average of the two p99s, and percentiles do not average"
        )
    assert abs(float(got) - truth) <= 0.01 * truth, "not the 99th percentile of all the requests"


def _test_same_shape(fn: Callable[[Any, Any], float]) -> None:
    """two equal-sized samples of the same distribution"""
    rng = np.random.default_rng(1)
    _expect_p99(fn, rng.exponential(10.0, 5_000), rng.exponential(10.0, 5_000))


def _test_unequal(fn: Callable[[Any, Any], float]) -> None:
    """a large fast sample and a small slow one"""
    rng = np.random.default_rng(2)
    _expect_p99(fn, rng.exponential(5.0, 20_000), rng.exponential(200.0, 400))


def _test_lists(fn: Callable[[Any, Any], float]) -> None:
    """plain Python lists"""
    rng = np.random.default_rng(3)
    a, b = rng.normal(50.0, 5.0, 3_000), rng.normal(80.0, 5.0, 3_000)
    got = fn(list(a), list(b))
    truth = solution_p99_of_both(a, b)
    assert abs(float(got) - truth) <= 0.01 * truth, "lists of floats give a different answer"


register(
    CodeExercise(
        "lab01.q4",
        """Percentiles are never averaged: write p99_of_both(a, b).

        ``a`` and ``b`` are latencies (ms) measured by two load generators.
        Return the 99th percentile of all the requests, as one number.""",
        solution_p99_of_both,
        [_test_same_shape, _test_unequal, _test_lists],
        expects="function",
        hint="the p99 of the union is not a function of the two p99s alone.",
    )
)


register(
    ReflectionExercise(
        "lab01.q5",
        """Why does the closed loop under-report the stall that the open loop shows?""",
        "During the stall each closed-loop user waits for its response instead of sending, "
        "so the requests that would have queued behind the stall are never sent and never "
        "measured: only a handful of slow samples are recorded (coordinated omission). The "
        "open loop keeps sending on schedule and measures from the intended start.",
    )
)
