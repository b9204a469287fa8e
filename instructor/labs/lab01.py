"""Hidden part of lab 01: the stall's count, the gauge, the knee and its interval, percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from scalelab.analysis import fit_usl, little_law
from scalelab.analysis.load import Run
from scalelab.analysis.queueing import in_flight_series
from scalelab.exercises import Mistake, Verdict, hide
from scalelab.exercises.context import Context

from ._support import figures, throughput

# --- q1: requests caught by the stall -----------------------------------------------------


def stall_window(run: Run) -> tuple[float, float]:
    """When the run's stall began (Unix s, from its fault event) and ended."""
    events = run.events
    fault = events[(events["kind"] == "fault") & (events["name"] == "stall")]
    if fault.empty:
        from scalelab.exercises import AnswerError

        raise AnswerError(f"run {run.run_id} recorded no stall; was its fault schedule changed?")
    began = float(fault["t"].iloc[0])
    return began, began + float(run.spec["faults"][0]["stall"])


def caught_by_stall(ctx: Context) -> float:
    """Requests of the open loop meant to start while the service was stalled."""
    run = ctx.run("run")
    began, ended = stall_window(run)
    starts = run.requests["intended_start"].to_numpy(dtype=float)
    if len(starts) == 0 or starts.max() < ended:
        from scalelab.exercises import AnswerError

        raise AnswerError(
            f"run {run.run_id} stopped sending before its stall ended, so it cannot show "
            "what the stall caught; run it longer (or the stall earlier)"
        )
    return float(((starts >= began) & (starts < ended)).sum())


hide(
    "lab01.q1",
    expected=caught_by_stall,
    rel_tol=0.10,
    abs_tol=2.0,
    measured=caught_by_stall,
    reference=lambda ctx: float(ctx.param("rate")) * float(ctx.param("stall_s")),
    mistakes=[
        Mistake(
            lambda ctx: float(ctx.run("run").spec["load"]["users"]),
            "that is how many a closed loop of that many users has in flight; an open loop "
            "does not wait for its answers.",
        ),
        Mistake(
            lambda ctx: float(ctx.param("rate")) * float(ctx.param("stall_s")) / 2.0,
            "half of them is how long, on average, they wait; the question is how many arrive.",
        ),
        Mistake(
            lambda ctx: float(ctx.param("rate")) / float(ctx.param("stall_s")),
            "requests per second divided by seconds is not a number of requests.",
        ),
    ],
)

# --- q2: Little's law against the gauge ---------------------------------------------------


FEW_SAMPLES = 10
"""Fewer samples of the gauge than this cannot tell λ·mean from λ·median (30 % apart here):
three samples of a Poisson count around 16 can read [9, 12, 12]."""


def gauge_mean(ctx: Context) -> float:
    """The mean of the service's in-flight gauge over the run's measured window."""
    from scalelab.exercises import AnswerError

    law = little_law(ctx.run("run"))
    if law.samples < FEW_SAMPLES:
        raise AnswerError(
            f"the service's in-flight gauge was read {law.samples} times during the run; "
            f"at least {FEW_SAMPLES} are needed to judge its mean: run longer, or read it more "
            "often (monitoring.sample_interval_s)"
        )
    return float(law.measured_in_flight)


def gauge_tolerance(ctx: Context, target: float) -> float:
    """10 %, or three standard errors of the gauge's mean when its samples are noisier."""
    run = ctx.run("run")
    law = little_law(run)
    series = in_flight_series(run)
    a, b = law.window
    values = series[(series[:, 0] >= a) & (series[:, 0] <= b), 1] if len(series) else series
    se = float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return max(0.10 * target, 3.0 * se)


def _client(ctx: Context, column: str) -> float:
    f = figures(ctx.run("run"))
    return float(f["throughput_rps"]) * float(f[column]) / 1000.0


hide(
    "lab01.q2",
    expected=gauge_mean,
    tolerance=gauge_tolerance,
    reference=lambda ctx: _client(ctx, "mean_ms"),
    mistakes=[
        Mistake(
            lambda ctx: _client(ctx, "p50_ms"),
            "the law needs the mean time in the system; this delay is exponential, so its "
            "median is well below its mean.",
        ),
        Mistake(
            lambda ctx: (
                throughput(ctx.run("run")) / (float(figures(ctx.run("run"))["mean_ms"]) / 1e3)
            ),
            "requests per second divided by seconds per request is not a number of requests.",
        ),
        Mistake(
            lambda ctx: float(ctx.run("run").spec["load"].get("max_concurrency") or math.nan),
            "that is the load generator's ceiling on concurrency, not what was in flight.",
        ),
    ],
)

# --- q3: the USL knee and its interval ---------------------------------------------------

NO_KNEE = 1e4
"""A knee beyond this many users counts as none (the fit found no crosstalk to speak of)."""


def replications(runs: Sequence[Run]) -> dict[int, tuple[list[int], list[float]]]:
    """Each repeat's sweep: its concurrency levels and their throughputs."""
    reps: dict[int, tuple[list[int], list[float]]] = {}
    for run in runs:
        users, rps = reps.setdefault(run.repeat, ([], []))
        users.append(int(run.spec["load"]["users"]))
        rps.append(throughput(run))
    return reps


def knee(users: Sequence[int], rps: Sequence[float]) -> float:
    """N* of the USL fitted to the points (inf when there is none, or it is past NO_KNEE)."""
    n_star = float(fit_usl(users, rps).peak_concurrency)
    return math.inf if not n_star < NO_KNEE else n_star


def knee_interval(
    runs: Sequence[Run], confidence: float = 0.90
) -> tuple[float, tuple[float, float]]:
    """The mean knee of the replications and its t-interval (inf when any has no knee)."""
    knees = [knee(users, rps) for users, rps in replications(runs).values()]
    if any(math.isinf(k) for k in knees):
        return math.inf, (math.inf, math.inf)
    r = len(knees)
    mean = float(np.mean(knees))
    half = (
        float(stats.t.ppf(0.5 + confidence / 2, r - 1))
        * float(np.std(knees, ddof=1))
        / math.sqrt(r)
    )
    return mean, (mean - half, mean + half)


def _near(a: float, b: float, rel: float) -> bool:
    if math.isinf(a) or math.isinf(b):
        return math.isinf(a) and math.isinf(b)
    return abs(a - b) <= rel * max(abs(b), 1e-9)


def judge_knee(answer: tuple[float, tuple[float, float]], ctx: Context) -> Verdict:
    """The mean knee of the replications and its 90 % t-interval, each within 5 %."""
    runs = ctx.runs("run")
    n_star, (low, high) = answer
    mean, (t_low, t_high) = knee_interval(runs)
    if not _near(n_star, mean, 0.05):
        levels: dict[int, list[float]] = {}
        for users, rps in replications(runs).values():
            for n, x in zip(users, rps, strict=True):
                levels.setdefault(n, []).append(x)
        best = max(levels, key=lambda n: float(np.mean(levels[n])))
        if _near(n_star, float(best), 0.01):
            return Verdict(
                False,
                "that is the level where your measurements peaked; the knee is where the "
                "fitted curve peaks, between or beyond the levels you ran.",
            )
        return Verdict(False, f"N*={n_star:.4g} is not the mean knee of your replications.")
    if not (_near(low, t_low, 0.05) and _near(high, t_high, 0.05)):
        knees = [knee(u, x) for u, x in replications(runs).values()]
        half_z = 1.645 * float(np.std(knees, ddof=1)) / math.sqrt(len(knees))
        if _near(high - low, 2 * half_z, 0.05):
            return Verdict(
                False,
                "the knee is right, but with this few replications the interval's width comes "
                "from Student's t, not the normal distribution.",
            )
        return Verdict(
            False,
            f"the knee is right, but ({low:.4g}, {high:.4g}) is not the interval your "
            "replications give.",
        )
    return Verdict(True, f"correct: N*={n_star:.4g}, 90 % interval ({low:.4g}, {high:.4g}).")


hide("lab01.q3", judge=judge_knee, reference=lambda ctx: knee_interval(ctx.runs("run")))

# --- q4: the p99 of two instances ---------------------------------------------------------


def histogram_quantile(q: float, le: Sequence[float], cumulative: Sequence[float]) -> float:
    """Prometheus' histogram_quantile over cumulative bucket counts (upper bounds ``le``)."""
    bounds = np.asarray(le, dtype=float)
    counts = np.asarray(cumulative, dtype=float)
    total = counts[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    i = int(np.searchsorted(counts[:-1], rank, side="left"))
    if i == len(bounds) - 1:
        return float(bounds[-2])
    start = 0.0 if i == 0 else float(bounds[i - 1])
    below = 0.0 if i == 0 else float(counts[i - 1])
    inside = float(counts[i]) - below
    if inside <= 0:
        return float(bounds[i])
    return start + (float(bounds[i]) - start) * (rank - below) / inside


def solution_p99_of_both(le: Sequence[float], a: Sequence[float], b: Sequence[float]) -> float:
    """The reference answer to lab01.q4: merge the counts, then read the quantile."""
    merged = np.asarray(a, dtype=float) + np.asarray(b, dtype=float)
    return histogram_quantile(0.99, le, merged)


LE = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf]


def _cumulative(samples: np.ndarray) -> list[float]:
    return [float((samples <= bound).sum()) for bound in LE]


def _expect(fn: Any, a: list[float], b: list[float], what: str) -> None:
    le = list(LE)
    a_copy, b_copy = list(a), list(b)
    got = fn(le, a, b)
    assert isinstance(got, int | float | np.floating), (
        f"expected a number, got {type(got).__name__}"
    )
    assert list(a) == a_copy and list(b) == b_copy and le == LE, "the inputs were changed"
    truth = solution_p99_of_both(LE, a, b)
    averaged = (histogram_quantile(0.99, LE, a) + histogram_quantile(0.99, LE, b)) / 2
    if abs(float(got) - averaged) <= 1e-9 * max(averaged, 1.0) and abs(truth - averaged) > 1e-9:
        raise AssertionError(f"{what}: that is an average of the two instances' p99s")
    assert abs(float(got) - truth) <= 1e-6 * max(truth, 1e-3), f"{what}: not the p99 of both"


def _test_equal_instances(fn: Any) -> None:
    """two instances with the same distribution"""
    rng = np.random.default_rng(1)
    _expect(
        fn,
        _cumulative(rng.exponential(0.05, 4000)),
        _cumulative(rng.exponential(0.05, 4000)),
        "equal",
    )


def _test_unequal_instances(fn: Any) -> None:
    """a busy fast instance and a quiet slow one"""
    rng = np.random.default_rng(2)
    fast, slow = rng.exponential(0.004, 20000), rng.exponential(0.4, 300)
    _expect(fn, _cumulative(fast), _cumulative(slow), "unequal")


def _test_rank_in_the_last_bucket(fn: Any) -> None:
    """the p99 falls past the last finite bound"""
    rng = np.random.default_rng(3)
    slow = rng.uniform(3.0, 9.0, 500)
    _expect(fn, _cumulative(slow), _cumulative(rng.uniform(0.0, 0.004, 20)), "overflow")


def _test_arrays(fn: Any) -> None:
    """numpy arrays as well as lists"""
    rng = np.random.default_rng(4)
    a, b = _cumulative(rng.exponential(0.02, 3000)), _cumulative(rng.exponential(0.2, 3000))
    got = fn(np.asarray(LE), np.asarray(a), np.asarray(b))
    assert abs(float(got) - solution_p99_of_both(LE, a, b)) <= 1e-6, (
        "arrays give a different answer"
    )


hide(
    "lab01.q4",
    solution=solution_p99_of_both,
    tests=[
        _test_equal_instances,
        _test_unequal_instances,
        _test_rank_in_the_last_bucket,
        _test_arrays,
    ],
)

# --- q5: reflection -----------------------------------------------------------------------

hide(
    "lab01.q5",
    model_answer=(
        "During the stall each closed-loop user waits for its stuck request instead of "
        "sending, so the requests real users would have sent meanwhile are never sent and "
        "never measured: only one slow sample per user is recorded (coordinated omission). "
        "The open loop keeps sending on schedule and measures from each request's intended "
        "start, so every request that arrived during the stall carries its wait."
    ),
    rubric=(
        "closed-loop users stop sending while they wait",
        "the requests that would have arrived are never measured (coordinated omission)",
        "the open loop measures from the intended start",
    ),
)
