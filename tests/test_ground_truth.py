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
  predicts their latencies from the spec (R, S) and the service's floor
  measured before the stall; a closed loop under the same stall must visibly
  under-report it (coordinated omission).

Repeats. Each test separates two kinds of checks. Checks that machine noise
cannot excuse (summary.json's percentiles against the rows recorded, a request
answered faster than its own delay or before its stall ended, the number of
requests a schedule sent) are made once, on the first run, and fail at once.
Comparisons that noise can move (a measured percentile against the truth
within a few ms: on a shared 2-core machine a process can be frozen for 100 ms
and more, which is real latency, rightly reported) may be repeated on a fresh
run, up to :data:`ATTEMPTS` runs in all; each repeat is reported as a warning in
the test output, with the comparison that missed. Every run repeated is held to
the exact checks as well.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Callable, Iterator
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

# Latencies measured against a known truth: run alone (tasks.py test's serial part).
pytestmark = [pytest.mark.integration, pytest.mark.serial]

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "scenarios" / "baseline.py"
SEED = 11
IO_RATE = 50.0  # requests/s: a light load, so that the machine's noise stays small
IO_SECONDS = 3
IO_MIN_REQUESTS = IO_RATE * (IO_SECONDS - 2)  # a run that sent fewer started late


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
    summary = compute_summary(run_dir)
    requests = pd.read_parquet(run_dir / "requests.parquet")
    assert summary["requests"] == len(requests) > 0
    assert summary["errors"] == 0, requests.loc[~requests["ok"], "error"].unique()
    return Run(run_dir, summary, requests, runner)


@dataclass
class Floor:
    """What a /task/io request costs besides its delay: the median latency of a 1 ms delay, - 1.

    Measured under the same open loop, on the same code path (HTTP, FastAPI,
    the delay's draw, the event loop's timer, Locust's client), so nothing but
    the delay itself is left out. (/ping sets no timer and is cheaper;
    subtracting its latency would leave the timer's cost in every comparison.)
    Machine noise can inflate it as it can any latency, so a comparison that is
    repeated is repeated with a fresh floor too.
    """

    service: ServiceProcess
    folder: Path
    ms: float = math.nan
    runs: int = 0

    def measure(self) -> float:
        scenario = {"endpoint": "io", "io_dist": "fixed", "io_ms": 1.0, "io_local": True}
        spec = _spec({"mode": "open", "rate": IO_RATE, "arrival": "constant"}, scenario, 3)
        run = _run(self.service, self.folder / f"run-{self.runs}", spec)
        self.runs += 1
        self.ms = float(run.summary["p50_ms"]) - 1.0
        return self.ms


@pytest.fixture(scope="module")
def floor(service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory) -> Floor:
    """The service's floor, measured once for the module (and again before a repeat)."""
    measured = Floor(service, tmp_path_factory.mktemp("floor"))
    measured.measure()
    return measured


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
ATTEMPTS = 5
"""Runs at most, when a comparison that machine noise can move misses (see the module's doc).

Five, because on this 2-core machine shared with other test suites (load
averages of 4 to 5 were seen) three runs in a row can each meet a frozen
process; every repeat is a warning, so a machine that needs them shows it."""


def repeating_noisy(
    what: str,
    first: Run,
    again: Callable[[int], Run],
    exact: Callable[[Run], None],
    noisy: Callable[[Run], dict[str, Any]],
) -> tuple[Run, dict[str, Any]]:
    """The run that passed and ``noisy(run)``'s figures: ``first``, or one of up to
    ``ATTEMPTS - 1`` fresh runs.

    ``exact`` (what noise cannot excuse) runs on every run and is never repeated:
    its failure fails the test. A miss of ``noisy`` is repeated on ``again(attempt)``,
    with a warning naming what missed; the last miss fails the test.
    """
    run = first
    for attempt in range(ATTEMPTS):
        exact(run)
        try:
            return run, noisy(run)
        except AssertionError as exc:
            if attempt == ATTEMPTS - 1:
                raise
            warnings.warn(
                f"{what}: run {attempt} missed a comparison machine noise can move; "
                f"repeating it on a fresh run: {exc}",
                stacklevel=2,
            )
        run = again(attempt + 1)
    raise AssertionError("unreachable")


def _percentiles_are_the_rows(run: Run, column: str = "latency_intended_us") -> None:
    """summary.json's percentiles are those of the requests recorded (the tool itself)."""
    recorded = sorted(run.requests[column] / 1000.0)
    n = len(recorded)
    for p in (50, 99):
        exact = recorded[_rank(p, n) - 1]
        assert run.summary[f"p{p}_ms"] == pytest.approx(exact, rel=2e-3, abs=0.002), p


def _exact_io_checks(run: Run, scenario: dict[str, Any]) -> None:
    """What no noise excuses: the summary is the rows, each request took its own delay at
    least, and the delays drawn (as many as a full run sends) fit the distribution."""
    n = len(run.requests)
    _percentiles_are_the_rows(run)
    latencies = run.requests.sort_values("intended_start")["latency_intended_us"] / 1000.0
    residual = latencies.to_numpy() - _drawn_delays(scenario, n)
    assert residual.min() >= -1.5, "a request was answered before its own delay had passed"
    if scenario["io_dist"] == "exponential" and n >= IO_MIN_REQUESTS:
        ordered = sorted(_drawn_delays(scenario, n))
        for p in (50, 99):
            # 99.9 % of samples of size n have the true quantile between these order statistics
            low = max(1, int(stats.binom.ppf(0.0005, n, p / 100)))
            high = min(n, int(stats.binom.ppf(0.9995, n, p / 100)) + 1)
            assert ordered[low - 1] <= _theory(scenario, p) <= ordered[high - 1], p


def _noisy_io_checks(run: Run, scenario: dict[str, Any], floor: float) -> dict[str, Any]:
    """Measured latencies against the delays drawn and the theory, within 2 % or 1 ms:
    comparisons a frozen process (real latency) can push out. Returns the figures."""
    n = len(run.requests)
    # A starved Locust can spend most of its run time starting: too few requests to compare.
    assert n >= IO_MIN_REQUESTS, f"only {n} requests: Locust started late"
    latencies = run.requests.sort_values("intended_start")["latency_intended_us"] / 1000.0
    delays = _drawn_delays(scenario, n)
    residual = latencies.to_numpy() - delays
    assert float(pd.Series(residual).median()) <= floor + 5, residual
    near = ((residual > -1.5) & (residual < floor + 20)).mean()
    assert near >= 0.8, f"only {near:.0%} of requests took their own delay plus a few ms"

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
            low = max(1, int(stats.binom.ppf(0.0005, n, p / 100)))
            high = min(n, int(stats.binom.ppf(0.9995, n, p / 100)) + 1)
            band = (ordered[low - 1], ordered[high - 1])
            figures[key]["theory_band"] = band
            assert band[0] - tolerance <= measured <= band[1] + tolerance, (key, measured, band)
        else:
            assert abs(measured - theory) <= max(0.02 * theory, 1.0), (key, measured, theory)
    return figures


@pytest.mark.parametrize("dist", list(DISTRIBUTIONS))
def test_io_delay_distributions_are_measured_right(
    dist: str, service: ServiceProcess, floor: Floor, tmp_path: Path
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

    Repeats: summary.json against the rows, no request faster than its own
    delay, and the drawn delays against the theory are exact and checked on
    every run, never repeated. The comparisons of measured latencies with the
    truth (residuals near the floor, p50 and p99 within 2 %) can be pushed out
    by a process frozen for 100 ms or more on a shared 2-core machine (it shows
    as a burst of requests whose residuals fall by 20 ms per request, 20 ms
    apart): real latency, rightly reported, not an error of measurement. Only
    those are repeated on a fresh run, with a fresh measurement of the floor
    (which noise moves as well), at most :data:`ATTEMPTS` runs in all, each
    repeat a warning in the test output.
    """
    scenario = {"endpoint": "io", "io_seeded": True, "io_local": True, **DISTRIBUTIONS[dist]}
    spec = _spec({"mode": "open", "rate": IO_RATE, "arrival": "constant"}, scenario, IO_SECONDS)

    def again(attempt: int) -> Run:
        floor.measure()  # the floor is a latency too: noise may have moved it
        return _run(service, tmp_path / f"{dist}-{attempt}", spec)

    _, figures = repeating_noisy(
        dist,
        _run(service, tmp_path / f"{dist}-0", spec),
        again,
        lambda run: _exact_io_checks(run, scenario),
        lambda run: _noisy_io_checks(run, scenario, floor.ms),
    )
    print(f"\n{dist}: floor {floor.ms:.2f} ms, {figures}")


# --- a known stall ----------------------------------------------------------------------------

STALL_S = 1.0
STALL_AT_S = 1.0
STALL_RATE = 200.0
STALL_SECONDS = 5
CLOSED_USERS = 2


DRAIN_S = 0.15
"""Latency the drain after the stall may add to a held request, on top of the prediction.

The R·S held requests are released at once when the stall ends, and the service
answers them at its own pace: at least 1,350 /ping a second is what this allows
(a quiet 2-core machine answers about 5,000). It is an allowance stated in
advance, not a rate fitted to the run."""


def _open_stall_run(service: ServiceProcess, run_dir: Path) -> Run:
    """An open loop of evenly spaced /ping requests at R/s with a stall of S s in it."""
    spec = _spec(
        {"mode": "open", "rate": STALL_RATE, "arrival": "constant"},
        {"endpoint": "ping"},
        STALL_SECONDS,
    )
    return _run(service, run_dir, spec, [FaultSpec(at_s=STALL_AT_S, stall=STALL_S)])


@dataclass
class OpenStall:
    """The open-loop stall runs of the module: the first, and the one its test accepted."""

    first: Run
    accepted: Run | None = None

    @property
    def run(self) -> Run:
        """The run to compare the closed loop with."""
        return self.accepted or self.first


@pytest.fixture(scope="module")
def open_stall(service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory) -> OpenStall:
    """An open loop of evenly spaced /ping requests at R/s with a stall of S s in it."""
    return OpenStall(_open_stall_run(service, tmp_path_factory.mktemp("stall") / "open"))


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


@dataclass
class StallView:
    """An open-loop stall run as the prediction sees it."""

    t_s: float  # when the stall was asked for (its admin request sent)
    floor: float  # median latency (s) of the requests answered before the stall
    position: Any  # each held request's intended start - t_s (s), in order
    latency: Any  # each held request's latency from its intended start (s)
    slow: int  # requests of the run slower than S/2

    @property
    def predicted(self) -> Any:
        """Each held request waits for the stall's end, then takes the service's floor."""
        return STALL_S - self.position + self.floor

    @property
    def predicted_slow(self) -> float:
        """Requests slower than S/2: those intended less than S/2 + floor into the stall."""
        return STALL_RATE * (STALL_S / 2 + self.floor)


def _missed_stall(run: Run) -> str | None:
    """Why the run's load did not cover its stall (None when it did).

    A Locust process starved of CPU can spend most of its run time starting, so
    that the load ends before the stall is due or ends: noise, not an error of
    measurement, and nothing about the stall can be checked on such a run.
    """
    problems = run.faults.problems() if run.faults is not None else ["no fault schedule"]
    if problems:
        return f"the stall did not fire as planned: {problems}"
    t_s, req = _stall_start(run), run.requests
    ends = req["start"] + req["latency_us"] / 1e6
    first = req["intended_start"].min()
    before = int(((req["intended_start"] >= first + 0.2) & (ends < t_s)).sum())
    if before < 0.5 * STALL_RATE * (STALL_AT_S - 0.2):
        return f"only {before} requests before the stall: Locust started late"
    if req["intended_start"].max() < t_s + STALL_S + 0.2:
        return "the load ended before the stall did: Locust started late"
    return None


def _stall_view(run: Run) -> StallView:
    t_s, s = _stall_start(run), STALL_S
    req = run.requests
    ends = req["start"] + req["latency_us"] / 1e6
    first = req["intended_start"].min()
    before = req[(req["intended_start"] >= first + 0.2) & (ends < t_s)]  # Locust warmed up
    held = req[(req["intended_start"] >= t_s) & (req["intended_start"] < t_s + s)]
    held = held.sort_values("intended_start")
    return StallView(
        t_s=t_s,
        floor=float(before["latency_intended_us"].median()) / 1e6,
        position=(held["intended_start"] - t_s).to_numpy(),
        latency=held["latency_intended_us"].to_numpy() / 1e6,
        slow=int((req["latency_intended_us"] / 1e6 > s / 2).sum()),
    )


def _exact_stall_checks(run: Run) -> None:
    """What the stall makes certain, whatever the machine's noise (which only adds latency)."""
    s, rate = STALL_S, STALL_RATE
    _percentiles_are_the_rows(run)
    if _missed_stall(run) is not None:
        return  # nothing is certain about a stall the load did not cover (see the noisy side)
    view = _stall_view(run)
    assert abs(len(view.latency) - rate * s) <= 2, "the schedule sends R·S requests during S"
    # No request arriving once the stall holds (its admin request takes a few ms) is
    # answered before the stall's end.
    settled = view.position >= 0.02
    early = view.latency[settled] < (s - view.position[settled]) - 0.002
    assert not early.any(), view.latency[settled][early]
    # Every request held from before S/2 into the stall waited more than S/2.
    certain = int(((view.position >= 0.02) & (view.position < s / 2 - 0.002)).sum())
    assert view.slow >= certain, (view.slow, certain)
    assert run.summary["max_ms"] / 1000 >= 0.9 * s, run.summary["max_ms"]
    assert run.summary["p99_ms"] / 1000 >= 0.8 * s, run.summary["p99_ms"]  # > 1 % were held


def _noisy_stall_checks(run: Run) -> dict[str, Any]:
    """The prediction's upper side: the drain and the service's pace, which noise can slow."""
    s, rate = STALL_S, STALL_RATE
    missed = _missed_stall(run)
    assert missed is None, missed
    view = _stall_view(run)
    excess = view.latency - view.predicted
    within = (excess <= DRAIN_S).mean()
    assert within >= 0.9, f"only {within:.0%} of held requests within {DRAIN_S} s of the prediction"
    # The floor measured before the stall (a latency, which noise can inflate) adds R·floor.
    upper = rate * (s / 2 + view.floor + DRAIN_S)
    assert view.predicted_slow - 0.02 * rate * s <= view.slow <= upper, (view.slow, upper)
    summary = run.summary
    assert summary["max_ms"] / 1000 <= s + DRAIN_S + view.floor, summary["max_ms"]
    assert summary["p50_ms"] < 50, summary["p50_ms"]  # most requests never met the stall
    return {
        "held": len(view.latency),
        "floor_ms": round(view.floor * 1e3, 2),
        "slow": view.slow,
        "predicted_slow": round(view.predicted_slow, 1),
        "excess_ms_median": round(float(pd.Series(excess).median()) * 1e3, 1),
        "excess_ms_max": round(float(excess.max()) * 1e3, 1),
        **{k: summary[k] for k in ("requests", "p50_ms", "p99_ms", "max_ms")},
    }


def test_open_loop_shows_the_stall_its_spec_predicts(
    open_stall: OpenStall, service: ServiceProcess, tmp_path: Path
) -> None:
    """The R·S requests arriving during the stall wait for its end: from S down to 0.

    The prediction comes from the spec (the rate R, the stall S) and from the
    service's floor (the median latency of the requests answered before the
    stall, in the same run), and from nothing measured during or after the
    stall: the stall is asked for at t_s and holds every request arriving
    before t_s + S until then, so a request intended at t_s + p waits S - p,
    then takes the floor. Hence about R·S requests are held, the largest
    latency is about S, R·(S/2 + floor) requests exceed S/2, and p99 is near S
    since more than 1 % of the requests were held.

    What the prediction leaves out is the drain: the held requests are
    released at once and the service answers them at its own pace, which only
    adds latency. It is not fitted here; :data:`DRAIN_S` bounds it in advance.
    So the exact checks (never repeated) are those no noise can move: R·S
    requests held, none answered before the stall's end, every one held from
    before S/2 slower than S/2, summary.json equal to the rows. The
    comparisons with the prediction (each held request within the prediction
    + DRAIN_S, R·(S/2 + floor) requests slower than S/2 give or take the drain,
    p50 untouched) depend on the machine's pace, and on a floor that noise can
    inflate, and may be repeated on a fresh run, with a warning.
    """
    open_stall.accepted, figures = repeating_noisy(
        "open-loop stall",
        open_stall.first,
        lambda attempt: _open_stall_run(service, tmp_path / f"open-{attempt}"),
        _exact_stall_checks,
        _noisy_stall_checks,
    )
    print(f"\nopen loop: {json.dumps(figures)}")


def test_closed_loop_under_reports_the_same_stall(closed_stall: Run, open_stall: OpenStall) -> None:
    """Blocked users send nothing during the stall, so a closed loop records only a handful.

    Under the closed loop the stall still happens (its largest latency is about
    S), but only the requests its few users had in flight meet it: at most one
    per user exceeds S/2 instead of about R·S/2, its p99 stays far below S, and
    it sends about R·S fewer requests in all: the slow ones were never sent.
    """
    closed, opened, s = closed_stall, open_stall.run, STALL_S
    problems = closed.faults.problems() if closed.faults is not None else ["no fault schedule"]
    assert not problems, problems
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
