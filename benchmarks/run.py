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

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline if self.baseline else float("nan")

    def line(self) -> str:
        verdict = ""
        if self.target is not None:
            verdict = "meets target" if self.ratio >= self.target else "BELOW TARGET"
            verdict = f"target >= {self.target:g}: {verdict}"
        return (
            f"{self.name:<44} {self.measured:>10.1f} vs {self.baseline:>10.1f} {self.unit:<8}"
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


def bench_direct_vs_raw(seconds: float) -> list[Figure]:
    """The service's direct path through HTTP against raw Dask at the same concurrency."""
    concurrency, units = 32, 10
    raw = asyncio.run(_raw_dask_rps(seconds, concurrency, units, workers=2))
    http = _experiment(seconds, concurrency, units)
    return [
        Figure(
            "direct path vs raw Dask (32 in flight)",
            http["direct"],
            raw,
            "req/s",
            0.7,
            f"units={units}",
        ),
        Figure(
            "batched vs direct executor (32 users)",
            http["batched"],
            http["direct"],
            "req/s",
            4.0,
        ),
    ]


def bench_recorder(seconds: float) -> list[Figure]:
    """scalelab's recorder on, against plain Locust FastHttpUser, both on /ping."""
    from scalelab.service.process import start_service

    users = 16
    cfg = ServiceConfig.model_validate({"cluster": {"workers": 1}})
    plain, recorded = [], []
    with start_service(cfg) as service, tempfile.TemporaryDirectory() as results:
        for _ in range(2):  # interleaved, so drift hits both alike
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
    return [
        Figure(
            "recorder on vs plain Locust (/ping)",
            max(recorded),
            max(plain),
            "req/s",
            0.95,
            f"best of 2 each, {users} users",
        ),
    ]


BENCHMARKS: dict[str, Callable[[float], list[Figure]]] = {
    "direct": bench_direct_vs_raw,
    "recorder": bench_recorder,
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
