"""scalelab's own performance: what the lab costs, and how close its numbers come to the truth.

    .venv/bin/python benchmarks/run.py                          # every benchmark
    .venv/bin/python benchmarks/run.py --only recorder,cache_hit --seconds 10 --repeats 5

Every figure is measured ``--repeats`` times (default 3) and printed as
``median [min-max]``; the two sides of a comparison are measured in turn,
repeat by repeat, so drift on the machine hits both alike, and a ratio is taken
pair by pair. Costs are CPU time per request of the process concerned (Locust,
or the service), read from that process's own CPU counters (``psutil``) over
the steady part of a load, with the requests counted by the service over the
same interval: far steadier than throughput on a shared 2-core machine.

Each benchmark is one function ``bench_<name>(opts) -> list[Figure]``
registered with ``@benchmark("<name>")``; ``--only`` takes the names. The
figures and the machine they came from are kept in docs/benchmarks.md. This
process runs Dask (for the raw baseline) and so never imports Locust: Locust
always runs as a subprocess.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scalelab.config import ServiceConfig  # noqa: E402
from scalelab.experiment.spec import ExperimentSpec, parse_spec  # noqa: E402
from scalelab.procs import Child  # noqa: E402
from scalelab.prometheus_text import metric_value  # noqa: E402

# --- figures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What every benchmark is given: seconds of measured load, and repeats of each figure."""

    seconds: float
    repeats: int


@dataclass(frozen=True)
class Target:
    """A target on a figure's median (its ratio's median when it has a baseline)."""

    text: str
    met: Callable[[float], bool]


def at_least(x: float) -> Target:
    return Target(f">= {x:g}", lambda v: v >= x)


def at_most(x: float) -> Target:
    return Target(f"<= {x:g}", lambda v: v <= x)


def spread(values: list[float], digits: int = 1) -> str:
    """``median [min-max]`` of repeated measurements."""
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


@dataclass
class Figure:
    """One benchmark figure: its repeated measurements, and the baseline of each repeat."""

    name: str
    unit: str
    values: list[float]
    baseline: list[float] | None = None
    target: Target | None = None
    note: str = ""
    digits: int = 1

    @property
    def ratios(self) -> list[float]:
        """Measured over baseline, repeat by repeat."""
        if self.baseline is None:
            return []
        return [
            v / b if b else float("nan") for v, b in zip(self.values, self.baseline, strict=True)
        ]

    def verdict(self) -> str:
        if self.target is None:
            return ""
        judged = self.ratios if self.baseline is not None else self.values
        median = statistics.median(judged)
        what = "ratio" if self.baseline is not None else "median"
        met = "met" if self.target.met(median) else "NOT MET"
        return f"target {what} {self.target.text}: {met}"

    def line(self) -> str:
        text = f"{self.name}: {spread(self.values, self.digits)} {self.unit}"
        if self.baseline is not None:
            text += f" vs {spread(self.baseline, self.digits)}"
            text += f"; ratio {spread(self.ratios, 3)}"
        verdict = self.verdict()
        if verdict:
            text += f"; {verdict}"
        if self.note:
            text += f" ({self.note})"
        return text


BENCHMARKS: dict[str, Callable[[Options], list[Figure]]] = {}
"""Every benchmark by the name ``--only`` takes, in the order they run."""


def benchmark(name: str) -> Callable[[Callable[[Options], list[Figure]]], Callable[..., Any]]:
    """Register ``bench_<name>`` under ``name``."""

    def register(fn: Callable[[Options], list[Figure]]) -> Callable[[Options], list[Figure]]:
        BENCHMARKS[name] = fn
        return fn

    return register


# --- measuring a load: CPU per request over its steady part --------------------------------

SAMPLE_S = 0.5
"""How often a load's processes and the service's request counter are read."""

SETTLE_S = 1.0
"""Time after the first request before the steady part of a load begins."""


def cpu_s(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of process ``pid`` (and of its live children)."""
    import psutil

    proc = psutil.Process(pid)
    times = proc.cpu_times()
    total = times.user + times.system
    if children:
        for child in proc.children(recursive=True):
            try:
                t = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
    return float(total)


def served(url: str) -> float:
    """Data-plane requests the service has answered so far."""
    import httpx

    return metric_value(httpx.get(f"{url}/metrics", timeout=10).text, "scalelab_requests_total")


@dataclass
class Steady:
    """The steady part of one load: its length, the requests served, CPU of each process."""

    seconds: float
    requests: float
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def us_per_request(self, process: str) -> float:
        return self.cpu[process] / self.requests * 1e6


Sample = tuple[float, float, dict[str, float]]
"""One reading: (monotonic time, requests the service has answered, CPU s by process)."""


def _flowing(samples: list[Sample]) -> list[int]:
    """Indices of the samples that saw more requests answered than the one before."""
    return [i for i in range(1, len(samples)) if samples[i][1] > samples[i - 1][1]]


def steady_window(samples: list[Sample]) -> Steady:
    """From ``SETTLE_S`` after the first sample that saw requests to the last sample with
    requests still flowing after it."""
    flowing = _flowing(samples)
    if len(flowing) < 3:
        raise SystemExit("the load was too short to measure: raise --seconds")
    t_first = samples[flowing[0]][0]
    a = next((i for i in flowing if samples[i][0] >= t_first + SETTLE_S), flowing[0])
    b = flowing[-1] - 1  # the last sample whose next interval still served requests
    if b <= a:
        raise SystemExit("the load was too short to measure: raise --seconds")
    (ta, na, ca), (tb, nb, cb) = samples[a], samples[b]
    return Steady(tb - ta, nb - na, {k: cb[k] - ca[k] for k in ca})


def steady_for(seconds: float) -> Callable[[list[Sample]], bool]:
    """True once requests have flowed for ``SETTLE_S + seconds`` (and one interval more)."""

    def enough(samples: list[Sample]) -> bool:
        flowing = _flowing(samples)
        return (
            bool(flowing)
            and samples[-1][0] - samples[flowing[0]][0] >= SETTLE_S + seconds + SAMPLE_S
        )

    return enough


def locust_load(
    locustfile: Path, service: Any, seconds: float, users: int, extra: list[str]
) -> Steady:
    """One headless Locust run against ``service``, ended once its requests have flowed for
    ``seconds`` past the settling time (however long Locust took to start): the steady
    part, with the CPU of Locust (``locust``) and of the service process (``service``, not
    its Dask workers)."""
    work = Path(tempfile.mkdtemp(prefix="scalelab-bench-locust-"))
    limit = seconds + 60  # Locust's own run time: a bound, never reached on a working machine
    args = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless"]
    args += ["--host", service.url, "-u", str(users), "-r", str(users), "-t", f"{limit:g}s"]
    args += ["--stop-timeout", "2", "--exit-code-on-error", "0", "--only-summary", *extra]
    child = Child(args, "locust", log_path=work / "locust.log")
    pids = {"locust": child.pid, "service": service.child.pid}
    enough = steady_for(seconds)
    samples: list[Sample] = []
    try:
        while child.poll() is None and not enough(samples):
            t = time.monotonic()
            samples.append((t, served(service.url), {n: cpu_s(pid) for n, pid in pids.items()}))
            time.sleep(max(0.0, SAMPLE_S - (time.monotonic() - t)))
    finally:
        code = child.poll()
        child.stop(5)
    if code is not None and code != 0:
        raise SystemExit(f"locust exited with {code}:\n{child.log_tail(20)}")
    return steady_window(samples)


@contextmanager
def service_with(config: dict[str, Any]) -> Iterator[Any]:
    """A running service with ``config``."""
    from scalelab.service.process import start_service

    with start_service(ServiceConfig.model_validate(config)) as service:
        yield service


# --- the direct path, batching, raw Dask --------------------------------------------------


async def _tasks_per_second(
    client: Any, seconds: float, concurrency: int, units: int
) -> tuple[float, float]:
    """Tasks per second of ``concurrency`` loops submitting one task after another, and the
    CPU of this process (the client and the scheduler) meanwhile, in cores."""
    from scalelab.service.workloads import cpu_work

    done = 0
    measuring = False
    stop_at = time.monotonic() + 1.0 + seconds

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            await client.submit(cpu_work, units, pure=False)
            if measuring:
                done += 1

    tasks = [asyncio.create_task(loop()) for _ in range(concurrency)]
    await asyncio.sleep(1.0)  # warm-up, not counted
    measuring, start, cpu = True, time.monotonic(), time.process_time()
    await asyncio.gather(*tasks)
    wall = time.monotonic() - start
    return done / wall, (time.process_time() - cpu) / wall


async def _raw_dask_rps(
    opts: Options, concurrency: int, units: int, workers: int
) -> list[tuple[float, float]]:
    """Tasks per second of one async client at ``concurrency`` in flight, and the CPU (cores)
    of the process holding the client and the scheduler, ``repeats`` times."""
    from dask.distributed import Client, LocalCluster

    async with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            asynchronous=True,
        ) as cluster,
        Client(cluster, asynchronous=True) as client,
    ):
        return [
            await _tasks_per_second(client, opts.seconds, concurrency, units)
            for _ in range(opts.repeats)
        ]


def _experiment_runs(
    opts: Options, users: int, units: int, kinds: tuple[str, ...]
) -> dict[str, list[dict[str, Any]]]:
    """summary.json of each run of the quickstart spec's sweep over ``kinds``, by kind."""
    from scalelab.experiment.runner import run_experiment

    listed = ", ".join(f'"{k}"' for k in kinds)
    result = run_experiment(
        ROOT / "scenarios" / "quickstart.toml",
        overrides=[
            f"duration_s={opts.seconds:g}",
            f"repeats={opts.repeats}",
            f"load.users={users}",
            f"scenario.units={units}",
            f"sweep.service.executor.kind=[{listed}]",
        ],
        out=Path(tempfile.mkdtemp(prefix="scalelab-bench-")),
        progress=False,
        report=False,
    )
    runs: dict[str, list[dict[str, Any]]] = {}
    for run in result.runs:
        if run.status != "ok":
            raise SystemExit(f"benchmark run {run.run_id} {run.status}: {run.error}")
        runs.setdefault(str(run.params["service.executor.kind"]), []).append(run.summary)
    return runs


def _experiment_rps(
    opts: Options, users: int, units: int, kinds: tuple[str, ...] = ("direct", "batched")
) -> dict[str, list[float]]:
    """Throughput per executor kind from the quickstart spec's sweep, repeat by repeat."""
    runs = _experiment_runs(opts, users, units, kinds)
    return {k: [float(s["throughput_rps"]) for s in v] for k, v in runs.items()}


def wrk_rps(url: str, seconds: float, connections: int) -> float:
    """Requests per second ``wrk`` reports against ``url``."""
    import re

    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", url]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if not m:
        raise SystemExit(f"no Requests/sec in wrk's output:\n{out}")
    return float(m.group(1))


def have_wrk() -> bool:
    if shutil.which("wrk") is None:
        print("wrk: skipped: wrk is not installed (apt-get install wrk)", flush=True)
        return False
    return True


def _wrk_task_rps(opts: Options, connections: int, units: int, kind: str) -> list[float]:
    """Throughput of ``/task/cpu`` with executor ``kind`` under ``wrk``, repeat by repeat."""
    return [rps for rps, _ in _wrk_task_rps_cpu(opts, connections, units, kind)]


def _wrk_task_rps_cpu(
    opts: Options, connections: int, units: int, kind: str
) -> list[tuple[float, float]]:
    """Throughput of ``/task/cpu`` under ``wrk`` and the CPU (cores) of the service's process
    (HTTP, the stack, the Dask client and the scheduler), repeat by repeat."""
    import psutil

    config = {"cluster": {"workers": 2, "threads_per_worker": 1}, "executor": {"kind": kind}}
    with service_with(config) as service:
        url = f"{service.url}/task/cpu?units={units}"
        process = psutil.Process(service.child.pid)
        wrk_rps(url, 2, connections)  # warm-up
        out = []
        for _ in range(opts.repeats):
            before, start = sum(process.cpu_times()[:2]), time.monotonic()
            rps = wrk_rps(url, opts.seconds, connections)
            wall = time.monotonic() - start
            out.append((rps, (sum(process.cpu_times()[:2]) - before) / wall))
        return out


@benchmark("direct")
def bench_direct(opts: Options) -> list[Figure]:
    """The direct path against raw Dask at the same concurrency, under Locust and under wrk.

    Locust is the lab's own load and shares the 2 cores with the service; wrk is
    a C client. Raw Dask is one async client submitting tasks from 32 loops.
    """
    concurrency, units = 32, 10
    raw_both = asyncio.run(_raw_dask_rps(opts, concurrency, units, workers=2))
    raw = [rps for rps, _ in raw_both]
    at32 = _experiment_rps(opts, concurrency, units, ("direct",))
    figures = [
        Figure("raw Dask, async client, 32 in flight", "tasks/s", raw, note=f"units={units}"),
        Figure(
            "direct path (Locust, 32 users) vs raw Dask",
            "req/s",
            at32["direct"],
            raw,
            at_least(0.8),
        ),
    ]
    if have_wrk():
        both = _wrk_task_rps_cpu(opts, concurrency, units, "direct")
        direct = [rps for rps, _ in both]
        figures.append(
            Figure("direct path (wrk, 32 conns) vs raw Dask", "req/s", direct, raw, at_least(0.8))
        )
        # Where the time goes: the process that holds the scheduler, on one event loop.
        figures.append(
            Figure(
                "CPU of the process holding the scheduler: the service (wrk) vs raw Dask's",
                "cores",
                [cpu for _, cpu in both],
                [cpu for _, cpu in raw_both],
                digits=2,
            )
        )
        figures.append(
            Figure(
                "that process's CPU per request (service, wrk) vs per task (raw Dask)",
                "µs",
                [cpu / rps * 1e6 for rps, cpu in both],
                [cpu / rps * 1e6 for rps, cpu in raw_both],
            )
        )
    return figures


@benchmark("executors")
def bench_executors(opts: Options) -> list[Figure]:
    """The three task architectures under the same closed loop: throughput at 32 users and
    latency one request at a time (1 user), group-commit batching and actors against direct.
    """
    units = 10
    kinds = ("direct", "batched", "actor")
    busy = _experiment_runs(opts, 32, units, kinds)
    alone = _experiment_runs(opts, 1, units, kinds)

    def rps(runs: dict[str, list[dict[str, Any]]], kind: str) -> list[float]:
        return [float(s["throughput_rps"]) for s in runs[kind]]

    def p50(runs: dict[str, list[dict[str, Any]]], kind: str) -> list[float]:
        return [float(s["p50_ms"]) for s in runs[kind]]

    batched_extra = [
        b - d for b, d in zip(p50(alone, "batched"), p50(alone, "direct"), strict=True)
    ]
    figures = [
        Figure(
            "batched (group commit) vs direct (Locust, 32 users)",
            "req/s",
            rps(busy, "batched"),
            rps(busy, "direct"),
            at_least(4.0),
        ),
        Figure(
            "batched p50 minus direct p50, one request at a time (1 user)",
            "ms",
            batched_extra,
            target=at_most(1.0),
            note=f"direct p50 {spread(p50(alone, 'direct'), 2)} ms",
            digits=2,
        ),
        Figure(
            "actor vs direct (Locust, 32 users)",
            "req/s",
            rps(busy, "actor"),
            rps(busy, "direct"),
            at_least(3.0),
        ),
        Figure(
            "actor p50 vs direct p50, one request at a time (1 user)",
            "ms",
            p50(alone, "actor"),
            p50(alone, "direct"),
            at_most(1 / 3),
            digits=2,
        ),
    ]
    if have_wrk():
        direct = _wrk_task_rps(opts, 32, units, "direct")
        batched = _wrk_task_rps(opts, 32, units, "batched")
        actor = _wrk_task_rps(opts, 32, units, "actor")
        figures += [
            Figure("batched vs direct (wrk, 32 conns)", "req/s", batched, direct, at_least(4.0)),
            Figure("actor vs direct (wrk, 32 conns)", "req/s", actor, direct, at_least(3.0)),
        ]
    return figures


# --- what the recorder and the load generator cost ---------------------------------------


PACED_USERS, PACED_RPS = 16, 50.0
"""A fixed load for CPU per request: 16 users at 50 requests/s each (800/s), well below
what either side sustains, so every variant does the same work a second."""


def paced(scalelab_user: bool = True) -> list[str]:
    """Locust arguments pacing each user at ``PACED_RPS``."""
    if scalelab_user:
        return ["--wait-mode", "constant_throughput", "--wait-value", f"{PACED_RPS:g}"]
    return ["--throughput", f"{PACED_RPS:g}"]  # benchmarks/plain_ping.py


@benchmark("recorder")
def bench_recorder(opts: Options) -> list[Figure]:
    """Locust's CPU per request with scalelab's recorder on and off (the same ScaleLabUser
    on /ping, with and without ``--results-dir``), and against a plain FastHttpUser, all at
    one fixed rate."""
    baseline = ROOT / "scenarios" / "baseline.py"
    plain: list[Steady] = []
    off: list[Steady] = []
    on: list[Steady] = []
    ping = ["--endpoint", "ping", *paced()]
    with service_with({"cluster": {"workers": 1}}) as service, tempfile.TemporaryDirectory() as d:
        for _ in range(opts.repeats):  # interleaved, so drift hits every side alike
            plain.append(
                locust_load(
                    ROOT / "benchmarks" / "plain_ping.py",
                    service,
                    opts.seconds,
                    PACED_USERS,
                    paced(scalelab_user=False),
                )
            )
            off.append(locust_load(baseline, service, opts.seconds, PACED_USERS, ping))
            on.append(
                locust_load(
                    baseline, service, opts.seconds, PACED_USERS, [*ping, "--results-dir", d]
                )
            )
    cost_on = [r.us_per_request("locust") for r in on]
    cost_off = [r.us_per_request("locust") for r in off]
    share = [(a - b) / a * 100 for a, b in zip(cost_on, cost_off, strict=True)]
    rates = [r.rps for r in (*plain, *off, *on)]
    return [
        Figure(
            "Locust CPU per request, recorder on vs off (ScaleLabUser, /ping)",
            "µs",
            cost_on,
            cost_off,
            at_most(1.05),
            f"the recorder's share of Locust's CPU: {spread(share)} %; "
            "its writing at stop is in recorder_cost",
        ),
        Figure(
            "Locust CPU per request, ScaleLabUser (recorder off) vs plain FastHttpUser",
            "µs",
            cost_off,
            [r.us_per_request("locust") for r in plain],
            note=(
                f"{PACED_USERS} users at {PACED_RPS:g} requests/s each; "
                f"measured {spread(rates)} requests/s"
            ),
        ),
    ]


@benchmark("wrk")
def bench_wrk(opts: Options) -> list[Figure]:
    """The highest rate one Locust process sustains with the recorder on, against wrk (/ping)."""
    if not have_wrk():
        return []
    users = 64
    locust_rps, wrk = [], []
    with service_with({"cluster": {"workers": 1}}) as service, tempfile.TemporaryDirectory() as d:
        for _ in range(opts.repeats):  # interleaved, so drift hits both alike
            wrk.append(wrk_rps(f"{service.url}/ping", opts.seconds, users))
            steady = locust_load(
                ROOT / "scenarios" / "baseline.py",
                service,
                opts.seconds,
                users,
                ["--endpoint", "ping", "--results-dir", d],
            )
            locust_rps.append(steady.rps)
    return [
        Figure(
            "one Locust process, recorder on, vs wrk (/ping)",
            "req/s",
            locust_rps,
            wrk,
            at_least(0.8),
            f"{users} users / connections, closed loop",
        )
    ]


_RECORDER_COST = r"""
import json, sys, tempfile, time
from pathlib import Path

from geventhttpclient.header import Headers  # the headers FastHttpUser's responses carry

from scalelab.loadgen.records import INTENDED_KEY, RequestLog, write_histograms, write_requests

n, repeats = int(sys.argv[1]), int(sys.argv[2])


class Response:
    status_code = 200
    headers = Headers()


Response.headers["Content-Type"] = "application/json"
Response.headers["X-Worker"] = "tcp://127.0.0.1:40000"
Response.headers["X-Batch-Size"] = "1"
response = Response()
t0 = 1.7e9
contexts = [{INTENDED_KEY: t0 + i * 2e-3} for i in range(n)]
times = [0.5 + (i % 997) * 0.01 for i in range(n)]


def bare(request_type, name, response_time, response_length, response=None,
         context=None, exception=None, start_time=None, **kwargs):
    return None


def timed(listener):
    start = time.perf_counter()
    for i in range(n):
        listener("GET", "/ping", times[i], 13, response=response, context=contexts[i],
                 exception=None, start_time=t0 + i * 2e-3 + 1e-4)
    return (time.perf_counter() - start) / n * 1e6


bare_us, on_us, stop_us = [], [], []
for _ in range(repeats):
    log = RequestLog()
    bare_us.append(timed(bare))
    on_us.append(timed(log.on_request))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        write_requests(Path(folder) / "requests.parquet", log.table())
        write_histograms(Path(folder) / "latency.hdr", log.histograms(),
                         log.first_start, log.last_end)
    stop_us.append((time.perf_counter() - start) / n * 1e6)
print(json.dumps({"bare_us": bare_us, "on_request_us": on_us, "stop_us": stop_us,
                  "pandas": "pandas" in sys.modules}))
"""


@benchmark("recorder_cost")
def bench_recorder_cost(opts: Options) -> list[Figure]:
    """The recorder's own work per request (µs), timed in a process that never loads Dask."""
    n = 200_000
    out = subprocess.run(
        [sys.executable, "-c", _RECORDER_COST, str(n), str(opts.repeats)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=600,
    )
    cost = json.loads(out.stdout.strip().splitlines()[-1])
    total = [a + b for a, b in zip(cost["on_request_us"], cost["stop_us"], strict=True)]
    return [
        Figure(
            "recorder: on_request per request vs an empty listener",
            "µs",
            cost["on_request_us"],
            cost["bare_us"],
            note=f"{n} calls a repeat",
            digits=2,
        ),
        Figure(
            "recorder: writing parquet and HDR at stop, per request",
            "µs",
            cost["stop_us"],
            digits=2,
        ),
        Figure("recorder: all its work per request", "µs", total, digits=2),
    ]


# --- the service: a cache hit against /ping ----------------------------------------------


@benchmark("cache_hit")
def bench_cache_hit(opts: Options) -> list[Figure]:
    """The service's CPU per request on a cache hit (one hot key, LRU) and on /ping, at one
    fixed rate; and what each layer of the stack costs per request, from the service's own
    layer counters (hits and pings together)."""
    import httpx

    config = {"cluster": {"workers": 1}, "cache": {"policy": "lru", "size": 100}}
    ping: list[Steady] = []
    hit: list[Steady] = []
    with service_with(config) as service:
        assert httpx.get(f"{service.url}/task/key/k0").headers["x-cache"] == "miss"
        for _ in range(opts.repeats):  # interleaved pairs, so drift hits both alike
            for runs, locustfile, extra in (
                (ping, "baseline.py", ["--endpoint", "ping"]),
                (hit, "caching.py", ["--keys", "1", "--dist", "uniform"]),
            ):
                runs.append(
                    locust_load(
                        ROOT / "scenarios" / locustfile,
                        service,
                        opts.seconds,
                        PACED_USERS,
                        [*extra, *paced()],
                    )
                )
        text = httpx.get(f"{service.url}/metrics", timeout=10).text
    misses = metric_value(text, "scalelab_cache_misses_total")
    per_layer = _layer_costs(text)
    rates = [r.rps for r in (*ping, *hit)]
    return [
        Figure(
            "service CPU per cache hit vs per /ping",
            "µs",
            [h.us_per_request("service") for h in hit],
            [p.us_per_request("service") for p in ping],
            at_most(1 / 0.85),
            (
                f"the service process, not its Dask workers; {PACED_USERS} users at "
                f"{PACED_RPS:g} requests/s each, measured {spread(rates)} requests/s; "
                f"{misses:.0f} miss in all; at most 1/0.85: a CPU-bound service would "
                "serve hits at 0.85 of its /ping rate or better"
            ),
        ),
        *(
            Figure(f"stack: time inside layer '{name}' per request", "µs", [us], digits=1)
            for name, us in per_layer.items()
        ),
    ]


def _layer_costs(metrics_text: str) -> dict[str, float]:
    """µs spent inside each layer per request it saw (its own time, ``next`` excluded)."""
    from scalelab.prometheus_text import samples

    seconds: dict[str, float] = {}
    requests: dict[str, float] = {}
    for sample in samples(metrics_text):
        layer = sample.labels.get("layer")
        if layer is None:
            continue
        if sample.name == "scalelab_layer_seconds_total":
            seconds[layer] = float(sample.value)
        elif sample.name == "scalelab_layer_requests_total":
            requests[layer] = float(sample.value)
    return {k: seconds[k] / requests[k] * 1e6 for k in seconds if requests.get(k)}


# --- the truth of the figures: open-loop accuracy, Che, a stampede -----------------------


def _open_loop_spec(rate: float, opts: Options) -> ExperimentSpec:
    """An open loop of evenly spaced /ping requests at ``rate``, repeated."""
    return parse_spec(
        {
            "name": "bench-open-loop",
            "locustfile": str(ROOT / "scenarios" / "baseline.py"),
            "duration_s": opts.seconds,
            "repeats": opts.repeats,
            "cooldown_s": 0,
            "load": {"mode": "open", "rate": rate, "arrival": "constant", "max_concurrency": 1000},
            "scenario": {"endpoint": "ping"},
            "service": {"cluster": {"workers": 1}},
        }
    )


def _achieved_rate(starts: list[float]) -> float:
    """The slope of request number against send time (least squares): one request sent
    late at either end would skew a first-to-last span, but barely moves the slope."""
    starts = sorted(starts)
    n = len(starts)
    mean_k, mean_t = (n - 1) / 2, sum(starts) / n
    slope = sum((k - mean_k) * (t - mean_t) for k, t in enumerate(starts)) / sum(
        (k - mean_k) ** 2 for k in range(n)
    )
    return 1.0 / slope


@benchmark("open_loop")
def bench_open_loop(opts: Options) -> list[Figure]:
    """Open-loop accuracy: the rate requests actually left at, against 500/s; requests on time."""
    import pyarrow.parquet as pq

    from scalelab.experiment.runner import run_experiment
    from scalelab.loadgen.records import is_sent

    rate = 500.0
    out = Path(tempfile.mkdtemp(prefix="scalelab-bench-open-"))
    result = run_experiment(_open_loop_spec(rate, opts), out=out, progress=False, report=False)
    achieved, on_time, sent, dropped = [], [], [], []
    for run in result.runs:
        if run.status != "ok":
            raise SystemExit(f"benchmark run {run.run_id} {run.status}: {run.error}")
        table = pq.read_table(run.path / "requests.parquet", columns=["start", "method"])
        starts = [
            s
            for s, m in zip(table["start"].to_pylist(), table["method"].to_pylist(), strict=True)
            if is_sent(m)
        ]
        achieved.append(_achieved_rate(starts))
        summary = run.summary
        sent.append(float(summary["requests"]))
        on_time.append(float(summary["requests"] - summary["late"]))
        dropped.append(float(summary["dropped"]))
    return [
        Figure(
            f"open loop: achieved vs target rate ({rate:g}/s)",
            "req/s",
            achieved,
            [rate] * len(achieved),
            Target("within 1 %", lambda r: abs(r - 1) <= 0.01),
            "fitted to the send times of the requests sent",
        ),
        Figure(
            "open loop: requests sent on time (<= 10 ms late) vs sent",
            "req",
            on_time,
            sent,
            at_least(0.99),
            f"dropped: {spread(dropped, 0)}",
            digits=0,
        ),
    ]


CHE = {"capacity": 100, "keys": 1000, "alpha": 0.8}
CHE_SECONDS = 20.0
"""The length of the measured run the Che target is stated for."""


@benchmark("che")
def bench_che(opts: Options) -> list[Figure]:
    """LRU(100) under Zipf(0.8) over 1,000 keys: reads served without a computation of their
    own (``cache_served_ratio``), against Che's approximation."""
    from scalelab.analysis.caching import che_zipf_hit_ratio
    from scalelab.experiment.runner import run_experiment

    seconds = max(opts.seconds, CHE_SECONDS)
    result = run_experiment(
        ROOT / "scenarios" / "caching_sweep.toml",
        overrides={
            "duration_s": seconds,
            "warmup_s": max(5.0, seconds / 3),
            "cooldown_s": 0,
            "repeats": opts.repeats,
            "scenario.units": 0,
            "sweep": {
                "service.cache.policy": ["lru"],
                "service.cache.size": [CHE["capacity"]],
                "scenario.alpha": [CHE["alpha"]],
            },
        },
        out=Path(tempfile.mkdtemp(prefix="scalelab-bench-che-")),
        progress=False,
        report=False,
    )
    predicted = che_zipf_hit_ratio(CHE["capacity"], int(CHE["keys"]), CHE["alpha"])
    measured, reads = [], []
    for run in result.runs:
        if run.status != "ok":
            raise SystemExit(f"benchmark run {run.run_id} {run.status}: {run.error}")
        measured.append(float(run.summary["cache_served_ratio"]))
        reads.append(float(run.summary["cache_reads"]))
    differences = [m - predicted for m in measured]
    return [
        Figure(
            "LRU served ratio minus Che's approximation",
            "",
            differences,
            target=Target("|d| <= 0.01", lambda d: abs(d) <= 0.01),
            note=(
                f"measured {spread(measured, 4)} against {predicted:.4f}; Zipf({CHE['alpha']}) "
                f"over {CHE['keys']} keys, {CHE['capacity']} entries, {seconds:g} s after "
                f"warm-up, {spread(reads, 0)} reads"
            ),
            digits=4,
        )
    ]


STAMPEDE_TTL_S = 3.0
"""The hot key's TTL: longer than a burst takes to arrive, so one expiry is measured."""

STAMPEDE_IO_MS = 200.0
"""How long one computation of the hot key takes at the origin."""


@dataclass
class Burst:
    """One burst of concurrent reads of an expired key, as the client saw it."""

    origin_calls: float
    answers: list[str]
    sent: list[float]  # when each request was written (monotonic s)
    answered: list[float]  # when its answer was read whole

    def overlapping(self, io_s: float) -> int:
        """Requests in flight while the computation certainly ran.

        The computation lies inside the miss's own request (sent s_m, answered
        e_m) and takes at least ``io_s``, so it runs throughout
        [s_m + f, e_m - f] with f = (e_m - s_m) - io_s, wherever it sits: a
        request sent before that span ends and answered after it begins overlapped it.
        """
        misses = [i for i, a in enumerate(self.answers) if a == "miss"]
        if not misses:
            return 0
        m = misses[0]
        s_m, e_m = self.sent[m], self.answered[m]
        f = max(0.0, (e_m - s_m) - io_s)
        begin, end = s_m + f, e_m - f
        return sum(
            1 for s, e in zip(self.sent, self.answered, strict=True) if s < end and e > begin
        )


async def _burst(host: str, port: int, key: str, concurrent: int) -> tuple[list[str], ...]:
    """``concurrent`` reads of ``key``, each on a connection opened beforehand, written at once."""

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(host, port)

    conns = await asyncio.gather(*(connect() for _ in range(concurrent)))
    request = f"GET /task/key/{key} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    sent: list[float] = []
    for _, writer in conns:
        writer.write(request.encode())
        sent.append(time.monotonic())

    async def answer(reader: asyncio.StreamReader) -> tuple[str, float]:
        data = await asyncio.wait_for(reader.read(), 120)
        done = time.monotonic()
        head = data.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
        cache = next(
            (ln.split(":", 1)[1].strip() for ln in head.split("\r\n") if ln.startswith("x-cache:")),
            "",
        )
        return cache, done

    results = await asyncio.gather(*(answer(r) for r, _ in conns))
    for _, writer in conns:
        writer.close()
    return [c for c, _ in results], sent, [t for _, t in results]


def _stampede(service: Any, key: str, concurrent: int) -> Burst:
    """Read ``key`` once, let it expire, then read it ``concurrent`` times at once."""
    import httpx

    httpx.get(f"{service.url}/task/key/{key}", timeout=30).raise_for_status()
    time.sleep(STAMPEDE_TTL_S + 0.1)  # the entry expires
    before = metric_value(
        httpx.get(f"{service.url}/metrics").text, "scalelab_cache_origin_calls_total"
    )
    answers, sent, answered = asyncio.run(_burst(service.host, service.port, key, concurrent))
    after = metric_value(
        httpx.get(f"{service.url}/metrics").text, "scalelab_cache_origin_calls_total"
    )
    return Burst(after - before, answers, sent, answered)


@benchmark("stampede")
def bench_stampede(opts: Options) -> list[Figure]:
    """Origin calls for 200 concurrent reads of one expired key, coalescing on and off, and how
    many of the reads really overlapped the computation (from their timestamps)."""
    import httpx

    concurrent = 200
    config = {
        "cluster": {"workers": 1, "threads_per_worker": 8},
        "cache": {"policy": "ttl", "ttl_s": STAMPEDE_TTL_S, "coalesce": True},
        "origin": {"io_ms": STAMPEDE_IO_MS},
    }
    on: list[Burst] = []
    off: list[Burst] = []
    with service_with(config) as service:
        for r in range(opts.repeats):
            for coalesce, bursts in ((True, on), (False, off)):
                change = {"cache": {"coalesce": coalesce}}
                httpx.put(f"{service.url}/admin/config", json=change, timeout=30).raise_for_status()
                bursts.append(_stampede(service, f"hot-{r}-{coalesce}", concurrent))
    io_s = STAMPEDE_IO_MS / 1000
    overlapped = [float(b.overlapping(io_s)) for b in on]
    spans = [(max(b.sent) - min(b.sent)) * 1e3 for b in on]
    coalesced = [float(b.answers.count("coalesced")) for b in on]
    return [
        Figure(
            f"stampede: origin calls, {concurrent} concurrent reads, coalescing on vs off",
            "calls",
            [b.origin_calls for b in on],
            [b.origin_calls for b in off],
            note=f"answered coalesced with it on: {spread(coalesced, 0)}",
            digits=0,
        ),
        Figure(
            "stampede, coalescing on: origin calls",
            "calls",
            [b.origin_calls for b in on],
            target=Target("= 1", lambda v: v == 1),
            digits=0,
        ),
        Figure(
            "stampede: reads in flight while the computation ran vs reads sent",
            "reads",
            overlapped,
            [float(concurrent)] * len(on),
            at_least(0.9),
            f"all written within {spread(spans, 1)} ms; computation {STAMPEDE_IO_MS:g} ms",
            digits=0,
        ),
    ]


# --- failure handling (set-ups in benchmarks/failure.py) ------------------------------------


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


@benchmark("recovery")
def bench_recovery(opts: Options) -> list[Figure]:
    """A SIGKILLed worker under a load one worker cannot carry: time to recover with its
    nanny restarting it; without, the p99 of the last second (the queue still growing)."""
    import failure

    got = [failure.recovery(opts.seconds) for _ in range(opts.repeats)]
    detected = ", ".join(f"{g['nanny_detect']}/{g['no_nanny_detect']}" for g in got)
    never = sum(1 for g in got if g["no_nanny"] is None)
    return [
        Figure(
            "time to recover after a kill, with the nanny",
            "s",
            [_or_nan(g["nanny"]) for g in got],
            note=f"detected after {detected} s (with/without the nanny)",
        ),
        Figure(
            "p99 of the last second of load, without the nanny vs with it",
            "ms",
            [g["no_nanny_last_p99"] for g in got],
            [g["nanny_last_p99"] for g in got],
            note=f"without the nanny never recovered in {never} of {len(got)} runs",
        ),
    ]


@benchmark("hedging")
def bench_hedging(opts: Options) -> list[Figure]:
    """Hedging after the running p95 on a bimodal slow worker: p99, p99.9, extra requests."""
    import failure

    got = [failure.hedging(opts.seconds) for _ in range(opts.repeats)]
    return [
        Figure(
            "p99, hedged vs plain",
            "ms",
            [g["hedged_p99"] for g in got],
            [g["plain_p99"] for g in got],
        ),
        Figure(
            "p99.9, hedged vs plain",
            "ms",
            [g["hedged_p999"] for g in got],
            [g["plain_p999"] for g in got],
        ),
        Figure(
            "extra requests hedging cost",
            "share",
            [g["hedged_extra"] - g["plain_extra"] for g in got],
            target=at_most(0.10),
            note="The Tail at Scale: 2 %",
            digits=3,
        ),
    ]


@benchmark("amplification")
def bench_amplification(opts: Options) -> list[Figure]:
    """Attempts per request while every call fails: with a 10 % retry budget, and without."""
    import failure

    got = [failure.amplification(opts.seconds) for _ in range(opts.repeats)]
    return [
        Figure(
            "attempts per request with a budget",
            "attempts",
            [g["budget"] for g in got],
            target=at_most(1.1),
            digits=2,
        ),
        Figure(
            "attempts per request without one", "attempts", [g["no_budget"] for g in got], digits=2
        ),
    ]


SHEDDING_SETUPS = ((100.0, 300.0), (20.0, 100.0))
"""(task ms, SLO p99 ms): 60 requests/s of 100 ms, and the same 3x at 300 requests/s of 20 ms."""


@benchmark("shedding")
def bench_shedding(opts: Options) -> list[Figure]:
    """p99 of the requests admitted at 3x capacity, with load shedding and without."""
    import failure

    figures = []
    for io_ms, slo_ms in SHEDDING_SETUPS:
        got = [failure.shedding(opts.seconds, io_ms, slo_ms) for _ in range(opts.repeats)]
        what = f"{got[0]['rate']:g} req/s of {io_ms:g} ms"
        shed = ", ".join(f"{g['shedding_shed']:.0%}" for g in got)
        intended = ", ".join(f"{g['shedding_p99_intended']:.0f}" for g in got)
        figures += [
            Figure(
                f"admitted p99 with shedding, {what}",
                "ms",
                [g["shedding_p99"] for g in got],
                target=at_most(slo_ms),
                note=f"SLO {slo_ms:g} ms; {shed} shed; from the intended start {intended} ms",
            ),
            Figure(
                f"admitted p99 without shedding, {what}",
                "ms",
                [g["unprotected_p99"] for g in got],
            ),
        ]
    return figures


@benchmark("dask_defences")
def bench_dask_defences(opts: Options) -> list[Figure]:
    """Dask's own defences without the service's: task retries, and recomputing lost tasks."""
    import failure

    got = [failure.dask_defences(opts.seconds) for _ in range(opts.repeats)]
    return [
        Figure(
            "error rate at 20 % failing tasks, retries=2 vs 0",
            "share",
            [g["retries2_errors"] for g in got],
            [g["retries0_errors"] for g in got],
            digits=3,
        ),
        Figure(
            "p99 at 20 % failing tasks, retries=2 vs 0",
            "ms",
            [g["retries2_p99"] for g in got],
            [g["retries0_p99"] for g in got],
        ),
        Figure(
            "errors after a kill, allowed_failures=3 vs 0",
            "requests",
            [g["failures3_errors"] for g in got],
            [g["failures0_errors"] for g in got],
            digits=0,
        ),
        Figure(
            "slowest request after a kill, allowed_failures=3 vs 0",
            "ms",
            [g["failures3_max"] for g in got],
            [g["failures0_max"] for g in got],
        ),
    ]


from benchmarks.partitioning import BENCHMARKS as PARTITIONING  # noqa: E402

BENCHMARKS.update(PARTITIONING)  # pruning, keys_moved, hot_split, index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per load")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of every figure")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"--only: unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    if args.repeats < 1 or args.seconds <= 0:
        raise SystemExit("--repeats must be 1 or more and --seconds positive")
    opts = Options(seconds=args.seconds, repeats=args.repeats)
    load = " ".join(f"{x:.2f}" for x in load_average())
    print(
        f"# {platform.platform()}, python {platform.python_version()}, "
        f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, "
        f"load average {load}; --seconds {opts.seconds:g} --repeats {opts.repeats}",
        flush=True,
    )
    for name in names:
        started = time.monotonic()
        for figure in BENCHMARKS[name](opts):
            print(f"[{name}] {figure.line()}", flush=True)
        print(f"# {name}: {time.monotonic() - started:.0f} s", flush=True)


def load_average() -> tuple[float, float, float]:
    """The machine's load average (1, 5, 15 minutes): how busy it was when measured."""
    import os

    return os.getloadavg()


if __name__ == "__main__":
    main()
