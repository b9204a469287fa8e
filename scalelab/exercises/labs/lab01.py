"""Lab 01, latency and throughput: a stall, Little's law, the USL knee, percentiles (public part).

Notebook ``01_latency_and_throughput.ipynb``. The grader sets the open loop's
rate and the stall's length, and the arrival rate of the Little's-law run.
"""

from __future__ import annotations

import math
from typing import Any

from scalelab.exercises.base import AnswerError
from scalelab.exercises.code import CodeExercise
from scalelab.exercises.context import Context, Param, Runs
from scalelab.exercises.number import (
    AnswerExercise,
    NumberExercise,
    PredictionExercise,
    as_number,
    interval,
)
from scalelab.exercises.reflection import ReflectionExercise
from scalelab.exercises.registry import lab

LAB = lab(
    "lab01",
    "01_latency_and_throughput.ipynb",
    "Latency and throughput",
    parameters={
        "rate": (40.0, 50.0, 60.0),
        "stall_s": (1.0, 1.5, 2.0),
        "arrivals": (80.0, 100.0, 120.0),
    },
    smoke_parameters={"rate": (30.0, 40.0), "stall_s": (0.4, 0.5, 0.6), "arrivals": (80.0, 100.0)},
)
CONCEPTS = "docs/course.md, 'Concepts'"

LAB.add(
    PredictionExercise(
        "lab01.q1",
        """How many requests will the stall catch?

        The open loop will send ``P.rate`` requests per second, evenly spaced,
        and the service will stall for ``P.stall_s`` seconds. Before the run,
        predict how many requests will arrive while it is stalled (and so wait
        for it); record it with ``predict``. After the run, ``check`` counts
        them in the run's own records.""",
        points=2,
        unit="requests",
        bounds=(0.0, None),
        hint=f"what does an open loop do while its requests get no answer? ({CONCEPTS}, "
        "'Coordinated omission').",
        usage='predict("lab01.q1", n); later check("lab01.q1", run=open_run)',
        context={
            "run": Runs(
                "latency_open_closed",
                where={
                    "load.mode": "open",
                    "load.rate": Param("rate"),
                    "faults.0.stall": Param("stall_s"),
                },
                what="the open-loop run with the lab's rate and stall",
            )
        },
    )
)

LAB.add(
    NumberExercise(
        "lab01.q2",
        """Little's law against the service's own gauge.

        The run of ``scenarios/little_law.toml`` sends Poisson arrivals at
        ``P.arrivals`` per second. From the figures the load generator
        recorded (``run.summary``), how many requests were inside the service
        on average? The check compares your figure with the mean of the
        service's in-flight gauge over the run, within that gauge's sampling
        error.""",
        points=2,
        unit="requests",
        bounds=(0.0, None),
        hint=f"one law ties together the requests in a system, its throughput and the time each "
        f'spends in it; mind which average it needs ({CONCEPTS}, "Little\'s law").',
        usage='check("lab01.q2", L, run=little_run)',
        context={
            "run": Runs(
                "little_law",
                where={"load.rate": Param("arrivals")},
                what="the little_law run at the lab's arrival rate",
            )
        },
    )
)


def knee_shape(answer: Any, context: Context) -> tuple[float, tuple[float, float]]:
    """``(n_star, (low, high))``, from a sweep of three or more levels repeated twice or more."""
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        raise AnswerError("expected (n_star, (low, high)): the knee and its interval")
    n_star = as_number(answer[0], "the knee N* as a number (math.inf when there is none)")
    low, high = interval(answer[1], "the knee's interval (low, high)")
    if not (low <= n_star <= high or (math.isinf(n_star) and math.isinf(high))):
        raise AnswerError(f"the interval ({low:.4g}, {high:.4g}) does not hold your N*")
    levels = {run.spec.get("load", {}).get("users") for run in context.runs("run")}
    if len(levels) < 3:
        raise AnswerError(
            f"your sweep has {len(levels)} concurrency level(s); the USL has three unknowns, "
            "so sweep at least three levels (more past the knee pin it down)"
        )
    return n_star, (low, high)


LAB.add(
    AnswerExercise(
        "lab01.q3",
        """The USL knee from a sweep you design, with an interval.

        Choose the concurrency levels and the repeats of the sweep
        (``scenarios/usl_sweep.toml``). Treat each repeat as an independent
        replication of the whole sweep: fit the Universal Scalability Law to
        each replication's runs and find its knee N*, the concurrency past
        which adding users lowers throughput (``math.inf`` when the fit finds
        no such point, or puts it beyond 10,000 users). Answer the mean of the
        replications' knees and its 90 % confidence interval.""",
        points=3,
        shape=knee_shape,
        hint=f"the knee is where the fitted curve stops rising; an interval from a few "
        f"replications is wider than one from many ({CONCEPTS}, 'The Universal Scalability Law' "
        f"and 'Replications').",
        usage='check("lab01.q3", (n_star, (low, high)), run=sweep_runs)',
        context={
            "run": Runs(
                "usl_sweep",
                min_runs=6,
                min_repeats=2,
                what="your usl_sweep runs (three or more levels, two or more repeats each)",
            )
        },
    )
)


def _callable_with_three(fn: Any) -> None:
    """takes (le, a, b)"""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    assert len(params) == 3, "define p99_of_both(le, a, b): three arguments"


LAB.add(
    CodeExercise(
        "lab01.q4",
        """The p99 of two service instances, from their Prometheus histograms.

        Two instances of the service each export a latency histogram:
        cumulative counts ``a`` and ``b`` of requests no slower than each
        bucket's upper bound ``le`` (seconds, ascending, the last one
        ``math.inf``), as Prometheus stores them. Write
        ``p99_of_both(le, a, b)``: the 99th percentile (seconds) of all the
        requests of both instances, estimated as Prometheus'
        ``histogram_quantile`` does (its documentation says how).""",
        points=2,
        expects="function",
        public_tests=[_callable_with_three],
        hint="percentiles do not combine, but counts do; then read the rank as "
        "histogram_quantile reads it (prometheus.io, 'Histograms and summaries').",
        usage='check("lab01.q4", p99_of_both)',
    )
)

LAB.add(
    ReflectionExercise(
        "lab01.q5",
        """Why does the closed loop under-report the stall?

        The same stall gave a p99 of seconds in the open loop and of
        milliseconds in the closed one. In two or three sentences: why?""",
        points=2,
    )
)
