"""scalelab's own performance, measured as ratios within one run.

    .venv/bin/python benchmarks/run.py                 # every benchmark
    .venv/bin/python benchmarks/run.py --only recorder --seconds 10

Each benchmark prints what it measured, its baseline from the same run, the
ratio and the target. The figures and the machine they came from are kept in
docs/benchmarks.md. This process runs Dask (for the raw baseline) and so never
imports Locust: Locust always runs as a subprocess.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scalelab.config import ServiceConfig  # noqa: E402
from scalelab.experiment.spec import ExperimentSpec, parse_spec  # noqa: E402
from scalelab.procs import Child  # noqa: E402


@dataclass
class Figure:
    """One benchmark result: a measurement against its baseline from the same run."""

    name: str
    measured: float
    baseline: float
    unit: str
    target: float | None
    note: str = ""
    verdict_text: str = ""
    """A verdict of its own, for figures whose target is not a ratio (see :func:`judged`)."""

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline if self.baseline else float("nan")

    def line(self) -> str:
        verdict = self.verdict_text
        if self.target is not None:
            verdict = "meets target" if self.ratio >= self.target else "BELOW TARGET"
            verdict = f"target >= {self.target:g}: {verdict}"
        digits = 4 if self.unit == "ratio" else 1
        return (
            f"{self.name:<44} {self.measured:>10.{digits}f} vs {self.baseline:>10.{digits}f}"
            f" {self.unit:<8}"
            f" ratio {self.ratio:6.2f}  {verdict} {self.note}"
        )


# --- raw Dask -----------------------------------------------------------------------------


async def _raw_dask_rps(seconds: float, concurrency: int, units: int, workers: int) -> float:
    from dask.distributed import Client, LocalCluster

    from scalelab.service.workloads import cpu_work

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
        measuring, start = True, time.monotonic()
        await asyncio.gather(*tasks)
        return done / (time.monotonic() - start)


# --- Locust through the service -----------------------------------------------------------


def _experiment(seconds: float, users: int, units: int) -> dict[str, float]:
    """Throughput per executor kind from the quickstart spec's sweep (direct, batched)."""
    from scalelab.experiment.runner import run_experiment

    out = Path(tempfile.mkdtemp(prefix="scalelab-bench-"))
    result = run_experiment(
        ROOT / "scenarios" / "quickstart.toml",
        overrides=[
            f"duration_s={seconds:g}",
            f"load.users={users}",
            f"scenario.units={units}",
        ],
        out=out,
        progress=False,
        report=False,
    )
    figures = {}
    for run in result.runs:
        if run.status != "ok":
            raise SystemExit(f"benchmark run {run.run_id} {run.status}: {run.error}")
        figures[str(run.params["service.executor.kind"])] = float(run.summary["throughput_rps"])
    return figures


def _locust_requests(
    locustfile: Path, host: str, seconds: float, users: int, extra: list[str]
) -> float:
    """Requests per second Locust itself counted for one headless run."""
    work = Path(tempfile.mkdtemp(prefix="scalelab-bench-locust-"))
    args = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", host]
    args += ["-u", str(users), "-r", str(users), "-t", f"{seconds:g}s", "--stop-timeout", "2"]
    args += ["--exit-code-on-error", "0", "--csv", str(work / "stats"), "--only-summary", *extra]
    child = Child(args, "locust", log_path=work / "locust.log")
    try:
        child.wait(seconds + 60)
    finally:
        child.stop(5)
    with open(work / "stats_stats.csv") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                return float(row["Requests/s"])
    raise SystemExit(f"no Aggregated row in {work / 'stats_stats.csv'}")


# --- benchmarks ---------------------------------------------------------------------------


def _wrk_task_rps(seconds: float, connections: int, units: int, kind: str) -> float | None:
    """Throughput of ``/task/cpu`` with executor ``kind`` under ``wrk`` (None without wrk)."""
    import shutil

    from scalelab.service.process import start_service

    if shutil.which("wrk") is None:
        print("wrk: skipped: wrk is not installed (apt-get install wrk)", flush=True)
        return None
    cfg = ServiceConfig.model_validate(
        {"cluster": {"workers": 2, "threads_per_worker": 1}, "executor": {"kind": kind}}
    )
    with start_service(cfg) as service:
        _wrk_rps(f"{service.url}/task/cpu?units={units}", 2, connections)  # warm-up
        return _wrk_rps(f"{service.url}/task/cpu?units={units}", seconds, connections)


def bench_direct_vs_raw(seconds: float) -> list[Figure]:
    """The direct path against raw Dask at the same concurrency; batched against direct.

    The direct path is driven twice: by Locust (the lab's own load, which shares
    the 2 cores with the service) and by wrk (a C client, so the figure is the
    service's own overhead). Batched against direct is taken under wrk, and under
    Locust at 32 and 64 users:
    in a closed loop the batch size is bounded by the users in flight.
    """
    concurrency, units = 32, 10
    raw = asyncio.run(_raw_dask_rps(seconds, concurrency, units, workers=2))
    wrk = _wrk_task_rps(seconds, concurrency, units, "direct")
    wrk_batched = _wrk_task_rps(seconds, concurrency, units, "batched")
    at32 = _experiment(seconds, concurrency, units)
    at64 = _experiment(seconds, 2 * concurrency, units)
    figures = [
        Figure(
            "direct path (Locust) vs raw Dask, 32 in flight",
            at32["direct"],
            raw,
            "req/s",
            0.7,
            f"units={units}",
        )
    ]
    if wrk is not None:
        figures.append(
            Figure("direct path (wrk) vs raw Dask, 32 in flight", wrk, raw, "req/s", 0.7)
        )
    if wrk is not None and wrk_batched is not None:
        figures.append(
            Figure("batched vs direct executor (wrk), 32 conns", wrk_batched, wrk, "req/s", 4.0)
        )
    figures += [
        Figure(
            "batched vs direct executor, 32 users", at32["batched"], at32["direct"], "req/s", 4.0
        ),
        Figure(
            "batched vs direct executor, 64 users", at64["batched"], at64["direct"], "req/s", 4.0
        ),
    ]
    return figures


def bench_recorder(seconds: float) -> list[Figure]:
    """scalelab's recorder on, against plain Locust FastHttpUser, both on /ping."""
    from scalelab.service.process import start_service

    users, rounds = 16, 4
    cfg = ServiceConfig.model_validate({"cluster": {"workers": 1}})
    plain, recorded = [], []
    with start_service(cfg) as service, tempfile.TemporaryDirectory() as results:
        for _ in range(rounds):  # interleaved pairs, so drift hits both alike
            plain.append(
                _locust_requests(
                    ROOT / "benchmarks" / "plain_ping.py", service.url, seconds, users, []
                )
            )
            recorded.append(
                _locust_requests(
                    ROOT / "scenarios" / "baseline.py",
                    service.url,
                    seconds,
                    users,
                    ["--endpoint", "ping", "--results-dir", results],
                )
            )
    ratios = sorted(r / p for r, p in zip(recorded, plain, strict=True))
    median = (ratios[rounds // 2 - 1] + ratios[rounds // 2]) / 2
    return [
        Figure(
            "recorder on vs plain Locust (/ping)",
            median * statistics.median(plain),
            statistics.median(plain),
            "req/s",
            0.95,
            f"median of {rounds} interleaved pairs, {users} users; "
            f"pair ratios {', '.join(f'{r:.3f}' for r in ratios)}",
        ),
    ]


# --- caching ------------------------------------------------------------------------------


def judged(figure: Figure, ok: bool, target: str) -> Figure:
    """``figure`` with a verdict on a target that is not a ratio (a difference, an exact count)."""
    figure.verdict_text = f"target {target}: {'meets target' if ok else 'MISSES TARGET'}"
    return figure


def _service_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the service process itself (not its Dask workers)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _metric(url: str, name: str) -> float:
    import re

    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else float("nan")


def bench_cache_hit(seconds: float) -> list[Figure]:
    """The cache-hit path (one hot key, LRU) against /ping, and the service's CPU per request."""
    import httpx

    from scalelab.service.process import start_service

    users = 16
    cfg = ServiceConfig.model_validate(
        {"cluster": {"workers": 1}, "cache": {"policy": "lru", "size": 100}}
    )
    ping, hit, ping_cpu, hit_cpu = [], [], [], []
    with start_service(cfg) as service, tempfile.TemporaryDirectory() as results:
        assert httpx.get(f"{service.url}/task/key/k0").headers["x-cache"] == "miss"
        pid = service.child.pid
        for _ in range(2):  # interleaved, so drift hits both alike
            for rates, cpus, locustfile, extra in (
                (ping, ping_cpu, "baseline.py", ["--endpoint", "ping"]),
                (hit, hit_cpu, "caching.py", ["--keys", "1", "--dist", "uniform"]),
            ):
                before = _service_cpu_s(pid)
                rps = _locust_requests(
                    ROOT / "scenarios" / locustfile,
                    service.url,
                    seconds,
                    users,
                    [*extra, "--results-dir", results],
                )
                spent = _service_cpu_s(pid) - before
                rates.append(rps)
                cpus.append(spent / max(1.0, rps * seconds) * 1e6)
        hits = _metric(service.url, 'scalelab_cache_hits_total{tier="local"}')
    return [
        Figure(
            "cache-hit path vs /ping (one hot key)",
            max(hit),
            max(ping),
            "req/s",
            0.7,
            f"best of 2 each, {users} users, {hits:.0f} hits in all",
        ),
        Figure(
            "service CPU per cache hit vs per /ping",
            min(hit_cpu),
            min(ping_cpu),
            "µs",
            None,
            "service process only (not its Dask workers); lowest of 2 each",
        ),
    ]


def bench_che(seconds: float) -> list[Figure]:
    """Measured LRU hit ratio under Zipf(0.8) over 1000 keys against Che's approximation."""
    from scalelab.analysis import load_experiment
    from scalelab.analysis.caching import che_zipf_hit_ratio, hit_ratio
    from scalelab.experiment.runner import run_experiment

    capacity, keys, alpha = 100, 1000, 0.8
    out = Path(tempfile.mkdtemp(prefix="scalelab-bench-che-"))
    result = run_experiment(
        ROOT / "scenarios" / "caching_sweep.toml",
        overrides={
            "duration_s": seconds,
            "warmup_s": max(5.0, seconds / 3),
            "cooldown_s": 0,
            "scenario.units": 0,
            "sweep": {
                "service.cache.policy": ["lru"],
                "service.cache.size": [capacity],
                "scenario.alpha": [alpha],
            },
        },
        out=out,
        progress=False,
        report=False,
    )
    run = load_experiment(result.path).runs[0]
    if run.status != "ok":
        raise SystemExit(f"benchmark run {run.run_id} {run.status}: {result.runs[0].error}")
    # a read that waited for the computation of its key in flight would have been a hit
    # in a cache read one request at a time, as Che's model is
    measured = hit_ratio(run, count_coalesced=True)
    predicted = che_zipf_hit_ratio(capacity, keys, alpha)
    reads = len(run.measured_requests)
    return [
        judged(
            Figure(
                "LRU hit ratio vs Che's approximation",
                measured,
                predicted,
                "ratio",
                None,
                f"Zipf({alpha}) over {keys} keys, {capacity} entries, {reads} reads; "
                f"difference {measured - predicted:+.4f}",
            ),
            abs(measured - predicted) <= 0.02,
            "|difference| <= 0.02",
        )
    ]


STAMPEDE_TTL_S = 3.0
"""The hot key's TTL: longer than a burst takes to arrive, so one expiry is measured."""


def _stampede_calls(url: str, concurrent: int) -> tuple[float, list[str]]:
    """Origin computations while ``concurrent`` requests ask at once for one expired key."""
    import httpx

    async def burst() -> list[str]:
        limits = httpx.Limits(max_connections=concurrent + 10)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            # open every connection first, so the burst arrives at once
            await asyncio.gather(*(client.get("/ping") for _ in range(concurrent)))
            await client.get("/task/key/hot")
            await asyncio.sleep(STAMPEDE_TTL_S + 0.1)  # the entry expires
            answers = await asyncio.gather(
                *(client.get("/task/key/hot") for _ in range(concurrent))
            )
            return [r.headers.get("x-cache", "") for r in answers]

    before = _metric(url, "scalelab_cache_origin_calls_total")
    kinds = asyncio.run(burst())
    return _metric(url, "scalelab_cache_origin_calls_total") - before - 1, kinds


def bench_stampede(seconds: float) -> list[Figure]:
    """Origin calls for 200 concurrent requests of one expired key, coalescing on and off."""
    import httpx

    from scalelab.service.process import start_service

    concurrent = 200
    cfg = ServiceConfig.model_validate(
        {
            "cluster": {"workers": 1, "threads_per_worker": 4},
            "cache": {"policy": "ttl", "ttl_s": STAMPEDE_TTL_S, "coalesce": True},
            "origin": {"io_ms": 300.0},
        }
    )
    with start_service(cfg) as service:
        on, kinds = _stampede_calls(service.url, concurrent)
        change = {"cache": {"coalesce": False}}
        httpx.put(f"{service.url}/admin/config", json=change, timeout=30).raise_for_status()
        off, _ = _stampede_calls(service.url, concurrent)
    return [
        judged(
            Figure(
                f"stampede: origin calls, {concurrent} concurrent, coalescing",
                on,
                off,
                "calls",
                None,
                f"baseline: coalescing off; {kinds.count('coalesced')} answered coalesced",
            ),
            on == 1,
            "= 1 with coalescing",
        )
    ]


# --- measurement: open-loop accuracy, Locust against wrk, recorder cost -------------------


def _open_loop_spec(rate: float, seconds: float) -> ExperimentSpec:
    """An open loop of evenly spaced /ping requests at ``rate`` for ``seconds``."""
    return parse_spec(
        {
            "name": "bench-open-loop",
            "locustfile": str(ROOT / "scenarios" / "baseline.py"),
            "duration_s": seconds,
            "load": {"mode": "open", "rate": rate, "arrival": "constant", "max_concurrency": 1000},
            "scenario": {"endpoint": "ping"},
            "service": {"cluster": {"workers": 1}},
        }
    )


def bench_open_loop(seconds: float) -> list[Figure]:
    """Open-loop accuracy: the rate requests actually left at, against 500/s; requests on time."""
    import json

    import pyarrow.parquet as pq

    from scalelab.experiment.runner import run_experiment

    rate = 500.0
    out = Path(tempfile.mkdtemp(prefix="scalelab-bench-open-"))
    result = run_experiment(_open_loop_spec(rate, seconds), out=out, progress=False, report=False)
    run = result.runs[0]
    if run.status != "ok":
        raise SystemExit(f"benchmark run {run.run_id} {run.status}: {run.error}")
    table = pq.read_table(run.path / "requests.parquet", columns=["start", "method"])
    starts = sorted(
        s
        for s, m in zip(table["start"].to_pylist(), table["method"].to_pylist(), strict=True)
        if m != "DROPPED"
    )
    # The slope of send time against request number (least squares): one request sent
    # late at either end would skew a first-to-last span, but barely moves the slope.
    n = len(starts)
    mean_k, mean_t = (n - 1) / 2, sum(starts) / n
    slope = sum((k - mean_k) * (t - mean_t) for k, t in enumerate(starts)) / sum(
        (k - mean_k) ** 2 for k in range(n)
    )
    achieved = 1.0 / slope
    counts = json.loads((run.path / "loadgen.json").read_text())["open_loop"]
    sent, late, dropped = counts["sent"], counts["late"], counts["dropped"]
    within = abs(achieved / rate - 1) <= 0.01
    return [
        Figure(
            f"open loop: achieved vs target rate ({rate:g}/s)",
            achieved,
            rate,
            "req/s",
            0.99,
            f"fitted to the send times of {n} requests; within 1 %: {'yes' if within else 'NO'}",
        ),
        Figure(
            "open loop: requests sent on time vs sent",
            sent - late,
            sent,
            "req",
            0.99,
            f"late (> 10 ms): {late} ({late / max(sent, 1):.2%}), dropped: {dropped}",
        ),
    ]


def _wrk_rps(url: str, seconds: float, connections: int) -> float:
    """Requests per second ``wrk`` reports against ``url``."""
    import re

    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", url]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if not m:
        raise SystemExit(f"no Requests/sec in wrk's output:\n{out}")
    return float(m.group(1))


def bench_wrk(seconds: float) -> list[Figure]:
    """The highest rate one Locust process sustains with the recorder on, against wrk (/ping)."""
    import shutil

    from scalelab.service.process import start_service

    if shutil.which("wrk") is None:
        print("wrk: skipped: wrk is not installed (apt-get install wrk)", flush=True)
        return []
    users = 64
    cfg = ServiceConfig.model_validate({"cluster": {"workers": 1}})
    locust_rps, wrk_rps = [], []
    with start_service(cfg) as service, tempfile.TemporaryDirectory() as results:
        for _ in range(2):  # interleaved, so drift hits both alike
            wrk_rps.append(_wrk_rps(f"{service.url}/ping", seconds, users))
            locust_rps.append(
                _locust_requests(
                    ROOT / "scenarios" / "baseline.py",
                    service.url,
                    seconds,
                    users,
                    ["--endpoint", "ping", "--results-dir", results],
                )
            )
    return [
        Figure(
            "one Locust process, recorder on, vs wrk (/ping)",
            max(locust_rps),
            max(wrk_rps),
            "req/s",
            0.8,
            f"best of 2 each, {users} users / connections, closed loop",
        )
    ]


_RECORDER_COST = r"""
import json, sys, tempfile, time
from pathlib import Path

from geventhttpclient.header import Headers  # the headers FastHttpUser's responses carry

from scalelab.loadgen.records import INTENDED_KEY, RequestLog, write_histograms, write_requests

n = int(sys.argv[1])


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


best_bare, best_on, best_stop = [], [], []
for _ in range(3):
    log = RequestLog()
    best_bare.append(timed(bare))
    best_on.append(timed(log.on_request))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        write_requests(Path(folder) / "requests.parquet", log.table())
        write_histograms(Path(folder) / "latency.hdr", log.histograms(),
                         log.first_start, log.last_end)
    best_stop.append((time.perf_counter() - start) / n * 1e6)
print(json.dumps({"bare_us": min(best_bare), "on_request_us": min(best_on),
                  "stop_us": min(best_stop), "n": n, "pandas": "pandas" in sys.modules}))
"""


def bench_recorder_cost(seconds: float) -> list[Figure]:
    """The recorder's cost per request (µs), timed in a subprocess that never loads Dask."""
    import json

    n = 200_000
    out = subprocess.run(
        [sys.executable, "-c", _RECORDER_COST, str(n)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=600,
    )
    cost = json.loads(out.stdout.strip().splitlines()[-1])
    per_request_us = cost["on_request_us"] + cost["stop_us"]
    budget_us = 1e6 / 5000  # a request's time at 5,000 requests/s, /ping's rate on one core
    return [
        Figure(
            "recorder: on_request per request",
            cost["on_request_us"],
            cost["bare_us"],
            "µs",
            None,
            f"baseline: a listener that does nothing; best of 3 x {n} calls",
        ),
        Figure(
            "recorder: all its work per request",
            per_request_us,
            budget_us,
            "µs",
            None,
            f"on_request + writing parquet and HDR at stop ({cost['stop_us']:.2f} µs); "
            "ratio: share of a request's time at 5,000 requests/s",
        ),
    ]


# --- failure ------------------------------------------------------------------------------


def bench_recovery(seconds: float) -> list[Figure]:
    """Time to recover after a worker kill, with and without the nanny restarting it."""
    import failure

    got = failure.recovery(seconds)
    nanny, bare = got["nanny"], got["no_nanny"]
    nan = float("nan")
    return [
        Figure(
            "time to recover after a kill: no nanny / nanny",
            bare if bare is not None else nan,
            nanny if nanny is not None else nan,
            "s",
            None,
            f"detected after {got['nanny_detect']} s / {got['no_nanny_detect']} s; "
            "nan: never recovered (or never broke: see detected)",
        )
    ]


def bench_hedging(seconds: float) -> list[Figure]:
    """Hedging after the running p95 on a bimodal slow worker: tail and extra load."""
    import failure

    got = failure.hedging(seconds)
    extra = got["hedged_extra"] - got["plain_extra"]
    return [
        Figure("p99 hedged / plain", got["hedged_p99"], got["plain_p99"], "ms", None),
        Figure("p99.9 hedged / plain", got["hedged_p999"], got["plain_p999"], "ms", None),
        judged(
            Figure("extra requests hedging cost", extra, 1.0, "ratio", None),
            extra <= 0.10,
            "<= 0.10 (The Tail at Scale: 2 %)",
        ),
    ]


def bench_amplification(seconds: float) -> list[Figure]:
    """Attempts per request while every call fails: without and with a retry budget."""
    import failure

    got = failure.amplification(seconds)
    return [
        judged(
            Figure(
                "attempts per request, budget / none",
                got["budget"],
                got["no_budget"],
                "attempts",
                None,
            ),
            got["budget"] <= 1.1,
            "budget <= 1.1 attempts per request",
        )
    ]


def bench_shedding(seconds: float) -> list[Figure]:
    """p99 of admitted requests at 3x capacity: with shedding against the SLO, and without."""
    import failure

    got = failure.shedding(seconds)
    return [
        judged(
            Figure(
                "admitted p99 with shedding / SLO",
                got["shedding_p99"],
                got["slo_ms"],
                "ms",
                None,
                f"{got['shedding_shed']:.0%} shed; from intended start "
                f"{got['shedding_p99_intended']:.0f} ms",
            ),
            got["shedding_p99"] <= got["slo_ms"],
            "within the SLO",
        ),
        Figure(
            "admitted p99 without / SLO",
            got["unprotected_p99"],
            got["slo_ms"],
            "ms",
            None,
            f"{got['unprotected_shed']:.0%} shed",
        ),
    ]


BENCHMARKS: dict[str, Callable[[float], list[Figure]]] = {
    "direct": bench_direct_vs_raw,
    "recorder": bench_recorder,
    "open_loop": bench_open_loop,
    "wrk": bench_wrk,
    "recorder_cost": bench_recorder_cost,
    "cache_hit": bench_cache_hit,
    "che": bench_che,
    "stampede": bench_stampede,
    "recovery": bench_recovery,
    "hedging": bench_hedging,
    "amplification": bench_amplification,
    "shedding": bench_shedding,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per load")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"--only: unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    cpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    print(f"# {platform.platform()}, python {platform.python_version()}, {cpu} cores")
    for name in names:
        for figure in BENCHMARKS[name](args.seconds):
            print(figure.line(), flush=True)


if __name__ == "__main__":
    main()
