"""Ground truth: scalelab's figures against latencies known in advance.

Everything here is real: one task service (``scalelab serve``, a one-worker
LocalCluster) shared by the module, and real Locust subprocesses running
``scenarios/baseline.py`` with scalelab's recorder, started with exactly the
command line the experiment runner uses (``locust_args``), and ``summary.json``
figures computed by the runner's own ``compute_summary``. Each run is a few
seconds of load.

Two kinds of truth:

- **Known delay distributions.** ``GET /task/io`` draws each delay from a seeded
  distribution (fixed, exponential, bimodal), so the delays a run asked for
  are known exactly, and so are the distribution's quantiles. See
  :func:`test_io_delay_distributions_are_measured_right` for how the service's
  own overhead is accounted for.
- **A known stall.** A stall of S seconds during an open loop at R requests/s
  holds the R·S requests that arrive during it until it ends, so arithmetic
  predicts their latencies; a closed loop under the same stall must visibly
  under-report it (coordinated omission).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from scipy import stats

from scalelab.config import ServiceConfig
from scalelab.experiment.events import EventLog
from scalelab.experiment.faults import FaultRunner
from scalelab.experiment.locust_command import STOP_TIMEOUT_S, locust_args, run_time_s
from scalelab.experiment.spec import ExperimentSpec, FaultSpec, parse_spec
from scalelab.experiment.summary import compute_summary
from scalelab.procs import Child
from scalelab.service.process import ServiceProcess, start_service
from scalelab.service.workloads import draw_delay_ms

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "scenarios" / "baseline.py"
SEED = 11
IO_RATE = 50.0  # requests/s: a light load, so that the machine's noise stays small
IO_SECONDS = 3


@dataclass
class Run:
    """One Locust run's directory, summary and requests."""

    path: Path
    summary: dict[str, Any]
    requests: pd.DataFrame
    faults: FaultRunner | None = None


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    """One service for the whole module (``local=true`` and /ping never touch Dask)."""
    cfg = ServiceConfig.model_validate({"cluster": {"workers": 1, "threads_per_worker": 1}})
    svc = start_service(cfg)
    try:
        yield svc
    finally:
        svc.stop()


def _spec(load: dict[str, Any], scenario: dict[str, Any], seconds: float) -> ExperimentSpec:
    return parse_spec(
        {
            "name": "ground-truth",
            "locustfile": str(BASELINE),
            "duration_s": seconds,
            "seed": SEED,
            "load": load,
            "scenario": scenario,
        }
    )


def _run(
    service: ServiceProcess,
    run_dir: Path,
    spec: ExperimentSpec,
    faults: list[FaultSpec] | None = None,
) -> Run:
    """Run Locust as the experiment runner does (firing ``faults`` as it would)."""
    (run_dir / "locust").mkdir(parents=True)
    runner = None
    locust = Child(
        locust_args(spec, service.url, run_dir),
        "locust",
        log_path=run_dir / "locust" / "console.log",
        env={"PYTHONUNBUFFERED": "1"},
    )
    try:
        if faults:
            runner = FaultRunner(service.url, faults, EventLog()).start()
        code = locust.wait(run_time_s(spec) + STOP_TIMEOUT_S + 60)
    finally:
        if runner is not None:
            runner.stop()
        locust.stop(5)
    assert code == 0, locust.log_tail(20)
    if runner is not None:
        assert not runner.problems(), runner.problems()
    summary = compute_summary(run_dir)
    requests = pd.read_parquet(run_dir / "requests.parquet")
    assert summary["requests"] == len(requests) > 0
    assert summary["errors"] == 0, requests.loc[~requests["ok"], "error"].unique()
    return Run(run_dir, summary, requests, runner)


@pytest.fixture(scope="module")
def floor(service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory) -> float:
    """What a /task/io request costs besides its delay: the median latency of a 1 ms delay, - 1.

    Measured under the same open loop, on the same code path (HTTP, FastAPI,
    the delay's draw, the event loop's timer, Locust's client), so nothing but
    the delay itself is left out. (/ping sets no timer and is cheaper;
    subtracting its latency would leave the timer's cost in every comparison.)
    """
    scenario = {"endpoint": "io", "io_dist": "fixed", "io_ms": 1.0, "io_local": True}
    spec = _spec({"mode": "open", "rate": IO_RATE, "arrival": "constant"}, scenario, 3)
    run = _run(service, tmp_path_factory.mktemp("floor") / "run", spec)
    return float(run.summary["p50_ms"]) - 1.0


def _rank(p: float, n: int) -> int:
    """The 1-based rank HdrHistogram reports as the p-th percentile of n values."""
    return max(1, int(p * n / 100 + 0.5))


def _drawn_delays(scenario: dict[str, Any], n: int) -> list[float]:
    """The delays the first ``n`` requests asked for, in the order they were sent.

    ``scenarios/baseline.py`` with ``--io-seeded`` gives each request a seed
    from ``random.Random("baseline:<seed>:<process>:<user>")``; an open loop
    with one process has one driver user, whose requests draw seeds in the order
    of their intended starts. The service turns a seed into a delay with
    :func:`draw_delay_ms`.
    """
    seeds = random.Random(f"baseline:{SEED}:0:0")
    return [
        draw_delay_ms(
            scenario["io_dist"],
            scenario["io_ms"],
            slow_ms=scenario.get("io_slow_ms", 0.0),
            slow_frac=scenario.get("io_slow_frac", 0.0),
            seed=seeds.randrange(2**31),
        )
        for _ in range(n)
    ]


def _theory(scenario: dict[str, Any], p: float) -> float:
    """The distribution's own p-th percentile (ms)."""
    ms = scenario["io_ms"]
    if scenario["io_dist"] == "fixed":
        return float(ms)
    if scenario["io_dist"] == "exponential":
        return -ms * math.log(1 - p / 100)
    return float(scenario["io_slow_ms"] if 1 - p / 100 < scenario["io_slow_frac"] else ms)


DISTRIBUTIONS = {
    "fixed": {"io_dist": "fixed", "io_ms": 500.0},
    "exponential": {"io_dist": "exponential", "io_ms": 400.0},
    "bimodal": {"io_dist": "bimodal", "io_ms": 150.0, "io_slow_ms": 1000.0, "io_slow_frac": 0.05},
}
ATTEMPTS = 3


def _check_io_run(run: Run, scenario: dict[str, Any], floor: float) -> dict[str, Any]:
    """Every ground-truth assertion on one run; returns its figures for the report."""
    n = len(run.requests)
    assert n >= IO_RATE * (IO_SECONDS - 2)

    # The tool: summary.json's percentiles are those of the requests recorded.
    latencies = run.requests.sort_values("intended_start")["latency_intended_us"] / 1000.0
    recorded = sorted(latencies)
    for p in (50, 99):
        exact = recorded[_rank(p, n) - 1]
        assert run.summary[f"p{p}_ms"] == pytest.approx(exact, rel=2e-3, abs=0.002)

    # The truth: each request took its own delay plus a few ms.
    delays = _drawn_delays(scenario, n)
    residual = latencies.to_numpy() - delays
    assert -1.5 <= float(pd.Series(residual).median()) <= floor + 5, residual
    near = ((residual > -1.5) & (residual < floor + 20)).mean()
    assert near >= 0.8, f"only {near:.0%} of requests took their own delay plus a few ms"

    # The figures: p50 and p99 against the delays drawn and the distribution's own.
    ordered = sorted(delays)
    figures: dict[str, Any] = {"n": n}
    # A fixed delay's p99 is the overhead's own p99: the machine's noise, not the delay's.
    points = (
        ((50, "p50_ms"),) if scenario["io_dist"] == "fixed" else ((50, "p50_ms"), (99, "p99_ms"))
    )
    for p, key in points:
        measured = run.summary[key] - floor
        drawn = ordered[_rank(p, n) - 1]
        theory = _theory(scenario, p)
        tolerance = max(0.02 * drawn, 1.0)
        figures[key] = {"measured-floor": round(measured, 2), "drawn": drawn, "theory": theory}
        assert abs(measured - drawn) <= tolerance, (key, measured, drawn, floor)
        if scenario["io_dist"] == "exponential":
            # 99.9 % of samples of size n have the true quantile between these order statistics.
            low = max(1, int(stats.binom.ppf(0.0005, n, p / 100)))
            high = min(n, int(stats.binom.ppf(0.9995, n, p / 100)) + 1)
            band = (ordered[low - 1], ordered[high - 1])
            figures[key]["theory_band"] = band
            assert band[0] <= theory <= band[1], (key, theory, band)
            assert band[0] - tolerance <= measured <= band[1] + tolerance
        else:
            assert abs(measured - theory) <= max(0.02 * theory, 1.0), (key, measured, theory)
    return figures


@pytest.mark.parametrize("dist", list(DISTRIBUTIONS))
def test_io_delay_distributions_are_measured_right(
    dist: str, service: ServiceProcess, floor: float, tmp_path: Path
) -> None:
    """p50 and p99 in summary.json match the delays asked for, within 2 % or 1 ms.

    How the truth is known: every request carries a seed, so the delay it asked
    for is known exactly (:func:`_drawn_delays`). The measured p50 and p99 are
    compared with the same percentiles (the same rank rule as HdrHistogram) of
    those delays, and with the distribution's theoretical quantiles: directly
    for fixed and bimodal (whose quantiles any sample of this size shares), and
    for the exponential within a distribution-free 99.9 % band of order
    statistics around them, since a few hundred draws pin its p99 down only
    to about ±10 %. Each request's residual (its latency minus its own delay)
    is checked too, which proves that the delays drawn are the ones measured,
    and summary.json's percentiles are checked against the recorded requests.

    The service's overhead: what a request costs besides its delay (HTTP,
    FastAPI, Locust's client, the event loop's timer) is measured in the same
    session, under the same open loop, as the median latency of a 1 ms delay
    less 1 ms (``floor``, about 2 to 4 ms here), and subtracted from the
    measured percentiles. The delays are hundreds of milliseconds, so the 2 %
    tolerance (3 to 37 ms) dominates what is left of the overhead's jitter.

    ``local=true``: the service sleeps on its own event loop rather than on a
    Dask worker. Through Dask, each request would add the scheduler's and the
    worker's per-task overhead (0.2 to a few ms, with tens of ms of jitter on a
    loaded 2-core machine), and overlapping sleeps would need as many worker
    threads as requests in flight; neither is what this test measures.

    A retry: on a shared 2-core machine a process can be frozen for 100 ms or
    more (CPU contention; it shows as a burst of requests whose residuals fall
    by 20 ms per request, 20 ms apart). That is real latency, rightly reported,
    and a few such bursts in a 4 s run can push p99 out of a 2 % band with no
    error of measurement. So a failing run is repeated once; an error in the
    measurement would fail both.
    """
    scenario = {"endpoint": "io", "io_seeded": True, "io_local": True, **DISTRIBUTIONS[dist]}
    spec = _spec({"mode": "open", "rate": IO_RATE, "arrival": "constant"}, scenario, IO_SECONDS)
    failures = []
    for attempt in range(ATTEMPTS):
        run = _run(service, tmp_path / f"{dist}-{attempt}", spec)
        try:
            figures = _check_io_run(run, scenario, floor)
        except AssertionError as exc:
            failures.append(f"attempt {attempt}: {exc}")
            continue
        print(f"\n{dist}: floor {floor:.2f} ms, attempt {attempt}: {figures}")
        for failure in failures:
            print(f"  retried after {failure}")
        return
    pytest.fail("\n".join(failures))


# --- a known stall ----------------------------------------------------------------------------

STALL_S = 1.0
STALL_AT_S = 1.0
STALL_RATE = 200.0
STALL_SECONDS = 5
CLOSED_USERS = 2


@pytest.fixture(scope="module")
def open_stall(service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """An open loop of evenly spaced /ping requests at R/s with a stall of S s in it."""
    spec = _spec(
        {"mode": "open", "rate": STALL_RATE, "arrival": "constant"},
        {"endpoint": "ping"},
        STALL_SECONDS,
    )
    faults = [FaultSpec(at_s=STALL_AT_S, stall=STALL_S)]
    return _run(service, tmp_path_factory.mktemp("stall") / "open", spec, faults)


@pytest.fixture(scope="module")
def closed_stall(service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The same stall under a closed loop at the same rate: 2 users at 100 requests/s each."""
    spec = _spec(
        {
            "mode": "closed",
            "users": CLOSED_USERS,
            "wait": "constant_throughput",
            "wait_value": STALL_RATE / CLOSED_USERS,
        },
        {"endpoint": "ping"},
        STALL_SECONDS,
    )
    faults = [FaultSpec(at_s=STALL_AT_S, stall=STALL_S)]
    return _run(service, tmp_path_factory.mktemp("stall") / "closed", spec, faults)


def _stall_start(run: Run) -> float:
    assert run.faults is not None and len(run.faults.records) == 1
    return float(run.faults.records[0]["t"])


def test_open_loop_shows_the_stall_arithmetic_predicts(open_stall: Run) -> None:
    """The R·S requests arriving during the stall wait for its end: from S down to 0.

    The stall starts at t_s (when its admin request was sent) and holds every
    request arriving before t_s + S until then, so a request intended at t in
    that interval waits t_s + S - t. Two properties of the service, measured
    here, refine that: it resumes d0 after the stall's end (a few ms, more on
    a busy machine), and it drains the released requests c seconds each. The
    j-th held request then has latency S + d0 - j·(1/R - c): a line from about
    S down to about R·S·c. Hence: about R·S requests are held, the largest
    latency is about S, R·(S/2 + d0) / (1 - R·c) requests exceed S/2 (R·S/2
    when the service resumes and drains at once), and p99 is near S since more
    than 1 % of the requests were held.
    """
    run, s, rate = open_stall, STALL_S, STALL_RATE
    t_s = _stall_start(run)
    req = run.requests
    total = len(req)
    held = req[(req["intended_start"] >= t_s) & (req["intended_start"] < t_s + s)]
    held = held.sort_values("intended_start")
    assert abs(len(held) - rate * s) <= 0.1 * rate * s

    latency = held["latency_intended_us"].to_numpy() / 1e6
    position = (held["intended_start"] - t_s).to_numpy()  # j / R
    ends = held["start"] + held["latency_us"] / 1e6
    drain = (ends.quantile(0.95) - ends.min()) / (0.95 * len(held))  # c, seconds a request
    resume = max(0.0, float(pd.Series(latency[:10] - (s - position[:10])).median()))  # d0
    assert rate * drain < 0.5, f"the service drained only {1 / drain:.0f} requests/s"
    assert resume < 0.2 * s, f"the service resumed {resume * 1e3:.0f} ms after the stall"

    predicted = s + resume - position * (1 - rate * drain)
    assert (abs(latency - predicted) < 0.1 * s).mean() >= 0.9, latency - predicted
    assert latency[:5].min() >= 0.85 * s and latency[-5:].max() <= 0.3 * s

    slow = int((req["latency_intended_us"] / 1e6 > s / 2).sum())
    expected_slow = rate * (s / 2 + resume) / (1 - rate * drain)
    assert abs(slow - expected_slow) <= 0.15 * expected_slow, (slow, expected_slow)
    assert rate * s / 2 * 0.9 <= slow  # never fewer than the instant-drain arithmetic
    share = slow / total

    summary = run.summary
    assert 0.9 * s <= summary["max_ms"] / 1000 <= s + 0.3, summary["max_ms"]
    assert summary["p99_ms"] / 1000 >= 0.8 * s, summary["p99_ms"]
    assert summary["p50_ms"] < 50, summary["p50_ms"]  # most requests never met the stall
    figures = {k: summary[k] for k in ("requests", "p50_ms", "p99_ms", "max_ms")}
    print(
        f"\nopen loop: held {len(held)}, resumed after {resume * 1e3:.1f} ms, drained "
        f"{drain * 1e3:.2f} ms each, > S/2: {slow} (predicted {expected_slow:.0f}; "
        f"R·S/2 = {rate * s / 2:.0f}), share {share:.1%} (predicted {expected_slow / total:.1%}),"
        f" {json.dumps(figures)}"
    )


def test_closed_loop_under_reports_the_same_stall(closed_stall: Run, open_stall: Run) -> None:
    """Blocked users send nothing during the stall, so a closed loop records only a handful.

    Under the closed loop the stall still happens (its largest latency is about
    S), but only the requests its few users had in flight meet it: at most one
    per user exceeds S/2 instead of about R·S/2, its p99 stays far below S, and
    it sends about R·S fewer requests in all: the slow ones were never sent.
    """
    closed, opened, s = closed_stall, open_stall, STALL_S
    slow_closed = int((closed.requests["latency_us"] / 1e6 > s / 2).sum())
    slow_open = int((opened.requests["latency_intended_us"] / 1e6 > s / 2).sum())
    assert 1 <= slow_closed <= 2 * CLOSED_USERS, slow_closed
    assert slow_closed * 10 <= slow_open, (slow_closed, slow_open)

    assert closed.summary["max_ms"] / 1000 >= 0.5 * s  # it did meet the stall ...
    assert closed.summary["p99_ms"] / 1000 < 0.25 * s  # ... and its p99 hides it
    assert closed.summary["p99_ms"] * 3 < opened.summary["p99_ms"]

    t_s = _stall_start(closed)
    during = closed.requests[
        (closed.requests["start"] >= t_s + 0.05) & (closed.requests["start"] < t_s + s - 0.05)
    ]
    assert len(during) == 0, "a blocked closed-loop user cannot send"
    figures = {k: closed.summary[k] for k in ("requests", "p50_ms", "p99_ms", "max_ms")}
    print(f"\nclosed loop: > S/2: {slow_closed} (open: {slow_open}), {json.dumps(figures)}")
