"""Queueing checks: Little's law on a run, and M/M/c (Erlang C) predictions against measurement."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scalelab.analysis.load import Run
from scalelab.errors import ScaleLabError

IN_FLIGHT_METRIC = "scalelab_in_flight"


@dataclass(frozen=True)
class LittleLaw:
    """L = λW from the client's records, against the in-flight count the service measured.

    ``predicted_in_flight`` is λW (arrival rate times mean response time, actual
    latency: the time a request spends in the service, not queued in the client).
    ``client_in_flight`` is the time-average of requests outstanding at the client,
    computed exactly from the records over the window; Little's law says the two
    agree. ``measured_in_flight`` is the mean of the service's ``scalelab_in_flight``
    gauge over the same window (NaN when the run has no such samples), and
    ``relative_difference`` is ``(measured - predicted) / predicted``.
    """

    arrival_rate_rps: float
    mean_latency_s: float
    predicted_in_flight: float
    client_in_flight: float
    measured_in_flight: float
    relative_difference: float
    samples: int
    window: tuple[float, float]


def _window(run: Run, trim_s: float) -> tuple[float, float]:
    """From the first request (or the end of the warm-up) to the last response, trimmed."""
    req = run.sent_requests
    if req.empty:
        raise ScaleLabError(f"{run.path}: no requests recorded, so Little's law cannot be checked")
    a = float(req["start"].min())
    if run.measure_from is not None:
        a = max(a, run.measure_from)
    b = float((req["start"] + req["latency_us"] / 1e6).max())
    a, b = a + trim_s, b - trim_s
    if b <= a:
        raise ScaleLabError(
            f"{run.path}: the load window is shorter than twice trim_s={trim_s}; "
            "use a smaller trim_s"
        )
    return a, b


def in_flight_series(
    run: Run, metric: str = IN_FLIGHT_METRIC, source: str = "service"
) -> np.ndarray:
    """The service's in-flight gauge as rows of (t, value), summed over label sets per scrape."""
    m = run.metrics
    if m.empty:
        return np.empty((0, 2))
    rows = m[(m["metric"] == metric) & (m["source"] == source)]
    if rows.empty:
        return np.empty((0, 2))
    per_t = rows.groupby("t")["value"].sum().sort_index()
    return np.column_stack([per_t.index.to_numpy(dtype=float), per_t.to_numpy(dtype=float)])


def little_law(
    run: Run, trim_s: float = 0.0, window: tuple[float, float] | None = None
) -> LittleLaw:
    """Check L = λW on ``run`` over its load window (or ``window``), less ``trim_s`` each end.

    The window runs from the first request (or the end of the warm-up) to the
    last response. A steady state is what the law describes, so trimming the
    ramp at either end (``trim_s=1`` or more) gives a cleaner comparison.
    """
    a, b = window if window is not None else _window(run, trim_s)
    req = run.sent_requests  # an arrival the open loop dropped never reached the service
    start = req["start"].to_numpy(dtype=float)
    lat_s = req["latency_us"].to_numpy(dtype=float) / 1e6
    end = start + lat_s
    length = b - a
    inside = (start >= a) & (start < b)
    n = int(inside.sum())
    lam = n / length
    w = float(lat_s[inside].mean()) if n else float("nan")
    overlap = np.clip(np.minimum(end, b) - np.maximum(start, a), 0.0, None)
    client_l = float(overlap.sum() / length)
    series = in_flight_series(run)
    sel = series[(series[:, 0] >= a) & (series[:, 0] <= b)] if len(series) else series
    measured = float(sel[:, 1].mean()) if len(sel) else float("nan")
    predicted = lam * w
    rel = (measured - predicted) / predicted if predicted > 0 else float("nan")
    return LittleLaw(
        arrival_rate_rps=lam,
        mean_latency_s=w,
        predicted_in_flight=predicted,
        client_in_flight=client_l,
        measured_in_flight=measured,
        relative_difference=rel,
        samples=len(sel),
        window=(a, b),
    )


@dataclass(frozen=True)
class ErlangC:
    """An M/M/c queue's steady state (times in seconds).

    ``stable`` is False when utilisation is at or above 1: the queue then grows
    without bound and the waits are infinite.
    """

    arrival_rate: float
    service_rate: float
    servers: int
    utilization: float
    p_wait: float
    mean_wait_s: float
    mean_response_s: float
    mean_queue_length: float
    mean_in_system: float
    stable: bool


def erlang_c(arrival_rate: float, service_rate: float, servers: int) -> ErlangC:
    """M/M/c: probability of waiting (Erlang C), mean wait Wq, mean response W = Wq + 1/μ.

    ``arrival_rate`` λ and ``service_rate`` μ (per server) are per second. For
    c = 1 this gives Wq = ρ/(μ - λ). Computed through the Erlang B recursion, which
    stays exact for hundreds of servers where factorials overflow.
    """
    if servers < 1 or int(servers) != servers:
        raise ScaleLabError(f"servers={servers}: must be a whole number >= 1")
    if arrival_rate < 0 or service_rate <= 0:
        raise ScaleLabError(
            f"arrival_rate={arrival_rate}, service_rate={service_rate}: "
            "need arrival_rate >= 0 and service_rate > 0 (per second)"
        )
    c = int(servers)
    a = arrival_rate / service_rate  # offered load in Erlangs
    rho = a / c
    if rho >= 1.0:
        inf = math.inf
        return ErlangC(arrival_rate, service_rate, c, rho, 1.0, inf, inf, inf, inf, False)
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    p_wait = c * b / (c - a * (1.0 - b)) if a > 0 else 0.0
    wq = p_wait / (c * service_rate - arrival_rate)
    w = wq + 1.0 / service_rate
    return ErlangC(
        arrival_rate=arrival_rate,
        service_rate=service_rate,
        servers=c,
        utilization=rho,
        p_wait=p_wait,
        mean_wait_s=wq,
        mean_response_s=w,
        mean_queue_length=arrival_rate * wq,
        mean_in_system=arrival_rate * w,
        stable=True,
    )


@dataclass(frozen=True)
class MMCComparison:
    """An M/M/c prediction next to what a run measured (seconds)."""

    prediction: ErlangC
    measured_arrival_rate: float
    measured_response_s: float
    measured_wait_s: float
    relative_error: float

    @property
    def predicted_response_s(self) -> float:
        """The model's mean response time."""
        return self.prediction.mean_response_s


def mmc_prediction(
    run: Run,
    servers: int,
    service_rate: float,
    arrival_rate: float | None = None,
    trim_s: float = 0.0,
) -> MMCComparison:
    """Predict the run's mean response time with M/M/c and compare it to the measured one.

    ``service_rate`` is one server's rate (1 / mean service time); ``arrival_rate``
    defaults to the rate the run achieved. The measured wait is the measured mean
    response time less the mean service time 1/μ. ``relative_error`` is
    ``(measured - predicted) / predicted`` for the response time.
    """
    ll = little_law(run, trim_s=trim_s)
    lam = ll.arrival_rate_rps if arrival_rate is None else float(arrival_rate)
    pred = erlang_c(lam, service_rate, servers)
    w = ll.mean_latency_s
    rel = (w - pred.mean_response_s) / pred.mean_response_s if pred.stable else float("nan")
    return MMCComparison(
        prediction=pred,
        measured_arrival_rate=ll.arrival_rate_rps,
        measured_response_s=w,
        measured_wait_s=max(w - 1.0 / service_rate, 0.0),
        relative_error=rel,
    )
