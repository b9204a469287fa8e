"""Failure-handling measurements, each comparing two set-ups within one call (see run.py).

- :func:`recovery`: time to recover after a SIGKILLed worker, with its nanny restarting
  it and without (the cluster carries on with one worker fewer);
- :func:`hedging`: p99 and p99.9 on a bimodal slow worker with and without hedging after
  the running p95, and the extra requests hedging cost;
- :func:`amplification`: attempts per request while every call fails, retries without a
  budget against with one;
- :func:`shedding`: the p99 of the requests admitted at three times capacity, with load
  shedding and without, against the SLO.

Each runs real experiments (service, LocalCluster, Locust) through ``run_experiment``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalelab.experiment.runner import RunResult, run_experiment
from scalelab.experiment.spec import parse_spec

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def _runs(spec: dict[str, Any]) -> list[RunResult]:
    out = Path(tempfile.mkdtemp(prefix="scalelab-bench-failure-"))
    result = run_experiment(parse_spec(spec, SCENARIOS), out=out, progress=False, report=False)
    for run in result.runs:
        if run.status != "ok":
            raise SystemExit(f"{spec['name']}: run {run.run_id} failed: {run.error}")
    return result.runs


def _requests(run: RunResult) -> pd.DataFrame:
    frame = pd.read_parquet(run.path / "requests.parquet")
    return frame[frame["method"] != "DROPPED"]


def _measured(run: RunResult, after_s: float) -> pd.DataFrame:
    frame = _requests(run)
    return frame[frame["intended_start"] >= frame["intended_start"].min() + after_s]


def recovery(seconds: float) -> dict[str, float | None]:
    """Time to recover (s) after a kill at 4 s, with the nanny restarting the worker and
    without; the p99 (ms) of the last second of load of each, and the times to detect.

    The load sits between one worker's capacity and two: 14 requests/s (constant arrivals)
    of 100 ms on two 1-thread workers is 70 % of the pair and 140 % of one. With the nanny
    the queue built while the worker restarts drains at 6 requests/s; without it the queue
    grows by 4 requests/s to the end of the run, and the hypothesis never holds again.
    """
    out: dict[str, float | None] = {}
    for label, restart in (("nanny", True), ("no_nanny", False)):
        (run,) = _runs(
            {
                "name": f"bench_recovery_{label}",
                "locustfile": "baseline.py",
                "duration_s": max(seconds, 20.0),
                "warmup_s": 1,
                "load": {"mode": "open", "rate": 14.0, "arrival": "constant"},
                "scenario": {"endpoint": "io", "io_ms": 100},
                "service": {
                    "cluster": {"workers": 2, "threads_per_worker": 1},
                    "stack": ["admission", "retry", "faults", "cache"],
                },
                "faults": [{"at_s": 4.0, "action": "worker_kill", "params": {"restart": restart}}],
                "slo": {
                    "p99_ms": 300.0,
                    "error_rate": 0.01,
                    "recovery_s": 0.5,
                    "judge": ["before", "during", "after"],
                },
            }
        )
        out[label] = run.summary.get("time_to_recover_s")
        out[f"{label}_detect"] = run.summary.get("time_to_detect_s")
        frame = _requests(run)
        last = frame[frame["intended_start"] >= frame["intended_start"].max() - 1.0]
        out[f"{label}_last_p99"] = float(np.percentile(last["latency_intended_us"] / 1000.0, 99))
    return out


def hedging(seconds: float) -> dict[str, float]:
    """p99, p99.9 (ms) and extra requests (share) on a bimodal slow worker, hedged or not."""
    runs = _runs(
        {
            "name": "bench_hedging",
            "locustfile": "baseline.py",
            "duration_s": max(seconds, 12.0),
            "warmup_s": 2,
            "load": {"mode": "open", "rate": 40.0, "arrival": "poisson"},
            "scenario": {"endpoint": "io", "io_ms": 5},
            "service": {
                "cluster": {"workers": 2},
                "stack": ["admission", "hedge", "faults", "cache"],
                "hedge": {"percentile": 95.0, "min_samples": 50, "max_extra": 0.1},
            },
            "sweep": {"service.hedge.max_extra": [0.0, 0.1]},
            "faults": [
                {
                    "at_s": 0.5,
                    "until_s": max(seconds, 12.0) + 2.0,  # on to the end of the load
                    "action": "task",
                    "params": {
                        "workers": [0],
                        "dist": "bimodal",
                        "slow_ms": 200,
                        "slow_frac": 0.04,
                        "seed": 5,
                    },
                }
            ],
        }
    )
    out: dict[str, float] = {}
    for label, run in zip(("plain", "hedged"), runs, strict=True):
        frame = _measured(run, 2.0)
        last = frame["intended_start"].max()
        frame = frame[frame["intended_start"] < last - 1.0]  # not the load's stop
        lat = frame["latency_intended_us"].to_numpy() / 1000.0
        out[f"{label}_p99"] = float(np.percentile(lat, 99))
        out[f"{label}_p999"] = float(np.percentile(lat, 99.9))
        tried = frame["attempts"][frame["attempts"] > 0]
        out[f"{label}_extra"] = float(tried.sum() / len(tried) - 1.0)
    return out


def amplification(seconds: float) -> dict[str, float]:
    """Attempts per request while every task fails: ``no_budget`` and ``budget`` (10 %)."""
    runs = _runs(
        {
            "name": "bench_amplification",
            "locustfile": "baseline.py",
            "duration_s": max(seconds, 10.0),
            "load": {"users": 8},
            "scenario": {"endpoint": "io", "io_ms": 2},
            "service": {
                "cluster": {"workers": 2},
                "stack": ["admission", "retry", "faults", "cache"],
                "retry": {
                    "max_attempts": 5,
                    "backoff": "none",
                    "jitter": "none",
                    "budget_ratio": 0.1,
                    "budget_min_per_s": 0.0,
                },
            },
            "sweep": {"service.retry.budget": [False, True]},
            "faults": [
                {
                    "at_s": 1.0,
                    "until_s": max(seconds, 10.0) - 1.0,
                    "action": "task",
                    "params": {"workers": ["*"], "error_rate": 1.0},
                }
            ],
        }
    )
    out = {}
    for label, run in zip(("no_budget", "budget"), runs, strict=True):
        frame = _measured(run, 3.0)
        failing = frame[~frame["ok"] & (frame["attempts"] > 0)]
        out[label] = float(failing["attempts"].mean())
    return out


def shedding(seconds: float, io_ms: float = 100.0, slo_ms: float = 300.0) -> dict[str, float]:
    """p99 (ms) of admitted requests at 3x capacity with and without shedding; shed share.

    Tasks of ``io_ms`` on 2 x 1 threads serve ``2000 / io_ms`` requests/s: three times that
    arrive (Poisson), and shedding admits 4 in flight (two per thread: one running, one
    waiting). Short tasks mean many requests a second for the service's event loop and
    Locust, which share the machine's cores with the workers.
    """
    rate = 3.0 * 2.0 * 1000.0 / io_ms
    runs = _runs(
        {
            "name": "bench_shedding",
            "locustfile": "baseline.py",
            "duration_s": max(seconds, 10.0),
            "warmup_s": 2,
            "load": {"mode": "open", "rate": rate, "arrival": "poisson", "max_concurrency": 5000},
            "scenario": {"endpoint": "io", "io_ms": io_ms},
            "service": {"cluster": {"workers": 2}, "admission": {"max_in_flight": 4}},
            "sweep": {"service.stack": [["faults", "cache"], ["admission", "faults", "cache"]]},
        }
    )
    out = {"slo_ms": slo_ms, "rate": rate}
    for label, run in zip(("unprotected", "shedding"), runs, strict=True):
        frame = _measured(run, 2.0)
        admitted = frame[frame["status"] == 200]
        # From when each was sent: a load generator late on a busy machine is not the service.
        out[f"{label}_p99"] = float(np.percentile(admitted["latency_us"] / 1000.0, 99))
        out[f"{label}_p99_intended"] = float(
            np.percentile(admitted["latency_intended_us"] / 1000.0, 99)
        )
        out[f"{label}_shed"] = float((frame["status"] == 503).mean())
    return out


def dask_defences(seconds: float) -> dict[str, float]:
    """What Dask's own defences give and cost, without the service's retry layer.

    ``retries``: 20 % of tasks raise; the error rate and p99 with ``executor.retries``
    0 and 2. ``recompute``: a worker SIGKILLed under load; the error rate and p99
    with ``allowed_failures`` 0 (a task on the dead worker fails) and 3 (Dask
    recomputes it).
    """
    base: dict[str, Any] = {
        "locustfile": "baseline.py",
        "duration_s": max(seconds, 10.0),
        "warmup_s": 1,
        "load": {"users": 4},
        "scenario": {"endpoint": "io", "io_ms": 20},
    }
    out: dict[str, float] = {}
    retried = _runs(
        {
            **base,
            "name": "bench_dask_retries",
            "service": {"cluster": {"workers": 2}},
            "sweep": {"service.executor.retries": [0, 2]},
            "faults": [
                {
                    "at_s": 0.5,
                    "until_s": max(seconds, 10.0),
                    "action": "task",
                    "params": {"workers": ["*"], "error_rate": 0.2, "seed": 3},
                }
            ],
        }
    )
    for label, run in zip(("retries0", "retries2"), retried, strict=True):
        frame = _measured(run, 1.5)
        out[f"{label}_errors"] = float((~frame["ok"]).mean())
        out[f"{label}_p99"] = float(np.percentile(frame["latency_us"] / 1000.0, 99))
    killed = _runs(
        {
            **base,
            "name": "bench_dask_recompute",
            "service": {"cluster": {"workers": 2}},
            "sweep": {"service.cluster.allowed_failures": [0, 3]},
            "faults": [{"at_s": 4.0, "action": "worker_kill", "params": {"restart": True}}],
        }
    )
    for label, run in zip(("failures0", "failures3"), killed, strict=True):
        frame = _measured(run, 1.0)
        out[f"{label}_errors"] = float((~frame["ok"]).sum())
        out[f"{label}_max"] = float(frame["latency_us"].max() / 1000.0)
    return out
