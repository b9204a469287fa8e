"""Lab 08, observability: USE and RED on a run with a hidden limit, an alert, a slow request
(public part).

Notebook ``08_observability.ipynb``. The grader sets the system under test
(``system``: worker threads per worker, the admission limit, and the delay of
a layer named ``gate``), the share of requests the injected fault fails, and
the percentile of the RED figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from scalelab.exercises.base import AnswerError
from scalelab.exercises.context import Context, Param, Runs
from scalelab.exercises.number import AnswerExercise, as_number
from scalelab.exercises.reflection import ReflectionExercise
from scalelab.exercises.registry import lab

LAB = lab(
    "lab08",
    "08_observability.ipynb",
    "Observability: USE, RED, an alert and the slowest request",
    parameters={
        "system": ((1, 1000, 0.0), (4, 2, 0.0), (4, 1000, 150.0)),
        "error_rate": (0.2, 0.3, 0.4),
        "quantile": (0.9, 0.95, 0.99),
    },
)
CONCEPTS = "docs/course.md, 'Concepts'"
RESOURCES = ("workers", "admission", "none")
PHASES = ("client", "service", "worker")
DETECT_S = 3.0
"""The alert must be firing from this long after the fault starts until it ends."""
CLEAR_S = 5.0
"""The alert must be silent from this long after the fault ends (and before it starts)."""


def run_context(what: str) -> dict[str, Runs]:
    """The lab's one run: ``scenarios/observability.toml`` as the grader set it up."""
    return {
        "run": Runs(
            "observability",
            where={
                "service.cluster.threads_per_worker": Param("system", 0),
                "service.admission.max_in_flight": Param("system", 1),
                "service.layers.gate.ingress_delay_ms": Param("system", 2),
            },
            what=what,
        )
    }


def _pair(value: Any, what: str) -> tuple[float, float]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise AnswerError(f"expected {what} as (utilisation, saturation)")
    u, s = (as_number(v, f"numbers in {what}") for v in value)
    if u < 0 or s < 0:
        raise AnswerError(f"{what}: utilisation and saturation are never negative")
    return u, s


def use_shape(answer: Any, context: Context) -> dict[str, Any]:
    """``{"workers": (U, S), "admission": (U, S), "saturated": name}``."""
    if not isinstance(answer, Mapping):
        raise AnswerError(
            'expected a dict: {"workers": (U, S), "admission": (U, S), "saturated": name}'
        )
    missing = [k for k in ("workers", "admission", "saturated") if k not in answer]
    if missing:
        raise AnswerError(f"your answer lacks {', '.join(missing)}")
    saturated = str(answer["saturated"]).strip().lower()
    if saturated not in RESOURCES:
        raise AnswerError(f"saturated = {answer['saturated']!r}: name one of {RESOURCES}")
    return {
        "workers": _pair(answer["workers"], "the worker threads"),
        "admission": _pair(answer["admission"], "the admission limit"),
        "saturated": saturated,
    }


LAB.add(
    AnswerExercise(
        "lab08.q1",
        """USE: which resource is saturated? From the metrics alone.

        Before the fault starts, the run's load is steady. Over that window (from
        the first request's intended start to the fault's start), fill in the USE
        method for two resources of the service, from ``metrics.parquet`` only:

        - the **worker threads**: utilisation is the mean share of the workers'
          threads executing a task; saturation the mean number of tasks waiting
          for a thread (ready on a worker, or queued at the scheduler);
        - the **admission limit**: utilisation is the mean share of its
          ``max_in_flight`` slots held by requests in the service; saturation the
          requests it shed per second.

        Each mean is over the scrapes in the window, a scrape that lacks a
        series counting 0 (Dask exports a task state only while some task is
        in it). Then name the resource that
        was saturated: ``"workers"``, ``"admission"``, or ``"none"``.""",
        points=3,
        shape=use_shape,
        hint=f"a resource can be busy without being the limit: saturation is work it "
        f"could not take on; the utilisation law and the metrics each export "
        f"({CONCEPTS}, 'The USE method' and 'The utilisation law and the bottleneck').",
        usage='check("lab08.q1", {"workers": (u, s), "admission": (u, s), "saturated": name}, '
        "run=run)",
        context=run_context("the observability run of the lab's system"),
    )
)


def rule_shape(answer: Any, context: Context) -> dict[str, Any]:
    """``{"expr": PromQL, "for": duration}`` (``alert``, ``labels``... may be there too)."""
    from scalelab.analysis.alerts import duration_s

    if not isinstance(answer, Mapping) or "expr" not in answer:
        raise AnswerError('expected an alerting rule as a dict: {"expr": "...", "for": "0s"}')
    expr = answer["expr"]
    if not isinstance(expr, str) or not expr.strip():
        raise AnswerError("the rule's expr is empty: give a PromQL expression")
    try:
        for_s = duration_s(answer.get("for", "0s"))
    except Exception as exc:
        raise AnswerError(str(exc)) from None
    return {"expr": expr.strip(), "for": for_s}


LAB.add(
    AnswerExercise(
        "lab08.q2",
        f"""An alerting rule that fires during the injected fault, and only then.

        Write a Prometheus alerting rule (its ``expr`` and its ``for``) that
        fires while the fault is on and stays silent otherwise. It is tried with
        ``promtool test rules`` on the run's own series (``metrics.parquet`` on a
        one-second grid, each source with its Prometheus ``job`` label; see
        ``scalelab.analysis.alerts``): it must be firing at every second from
        {DETECT_S:g} s after the fault starts until it ends, and silent at every
        second before it starts and from {CLEAR_S:g} s after it ends. The rule
        fires whenever its expression returns any series.""",
        points=3,
        shape=rule_shape,
        hint=f"a counter only grows: alert on how fast it grows, over a window short enough "
        f"to clear in time; and tell the fault's symptom from the system's everyday ones "
        f"({CONCEPTS}, 'The RED method' and 'Alerting on symptoms'; docs/observability.md).",
        usage='check("lab08.q2", {"expr": "...", "for": "0s"}, run=run)',
        context=run_context("the observability run of the lab's system"),
    )
)


def red_shape(answer: Any, context: Context) -> tuple[float, float, float]:
    """``(rate_rps, error_ratio, duration_ms)``."""
    if not isinstance(answer, tuple | list) or len(answer) != 3:
        raise AnswerError("expected (rate in requests/s, error ratio, percentile in ms)")
    rate, errors, ms = (as_number(v, "three numbers") for v in answer)
    if not 0.0 <= errors <= 1.0:
        raise AnswerError(f"an error ratio of {errors:.4g} is not between 0 and 1")
    if rate < 0 or ms < 0 or not (math.isfinite(rate) and math.isfinite(ms)):
        raise AnswerError("a rate and a duration are finite and never negative")
    return rate, errors, ms


LAB.add(
    AnswerExercise(
        "lab08.q3",
        """RED while the fault was on: rate, errors, duration.

        For the requests whose intended start falls while the fault was on
        (from its start to its end, as ``events.parquet`` records them), give
        the RED figures as the clients saw them: the rate (requests sent per
        second of that window), the errors (the share of them that failed, for
        any reason) and the duration (the ``P.quantile`` quantile of their
        latency from the intended start, in ms).""",
        points=2,
        shape=red_shape,
        hint=f"every figure is over the same requests, and a quantile is read from them, "
        f"never averaged ({CONCEPTS}, 'The RED method' and 'Percentiles and histograms').",
        usage='check("lab08.q3", (rate, errors, p_ms), run=run)',
        context=run_context("the observability run of the lab's system"),
    )
)


def slowest_shape(answer: Any, context: Context) -> tuple[str, str, float]:
    """``(request_id, phase, ms)``."""
    if not isinstance(answer, tuple | list) or len(answer) != 3:
        raise AnswerError("expected (request_id, phase, ms)")
    request_id, phase, ms = answer
    if not isinstance(request_id, str) or not request_id:
        raise AnswerError("the request id is text, as requests.parquet's request_id holds it")
    phase = str(phase).strip().lower()
    if phase not in PHASES:
        raise AnswerError(f"phase = {answer[1]!r}: name one of {PHASES}")
    return request_id, phase, as_number(ms, "the phase's time in ms")


LAB.add(
    AnswerExercise(
        "lab08.q4",
        """Where did the slowest request spend its time? From its logs.

        Take the slowest request of the run (latency from its intended start)
        and split its time in three phases, from its lines in the run's
        ``service.log`` and its row in ``requests.parquet``: ``"worker"``, the
        time its task ran on a Dask worker; ``"service"``, the time it spent in
        the service but not on a worker; ``"client"``, the rest of its latency
        (before it reached the service, and after it left). Answer its id, the
        phase that took the most time, and that phase's time in ms.""",
        points=2,
        shape=slowest_shape,
        hint="each line says where it was written and what it measured; the times nest "
        "(docs/observability.md and `scalelab logs RUN_DIR --slowest 1`).",
        usage='check("lab08.q4", (request_id, phase, ms), run=run)',
        context=run_context("the observability run of the lab's system"),
    )
)

LAB.add(
    ReflectionExercise(
        "lab08.q5",
        """USE, RED, or both?

        Your run's trouble was found by one method and explained by the other.
        In two or three sentences: what does each method see that the other
        cannot, and which would you page on?""",
        points=2,
    )
)
