"""Run directories of the labs' experiments, written from known behaviour, for the exercise tests.

Each is a real run directory as the runner writes it (docs/results-format.md),
built with :func:`tests.rundirs.write_run` from requests drawn from a known
model, then given the resolved spec, the parameters and the events the
exercise reads. A check judged on one of these is judged against the truth.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w
from rundirs import T0, make_requests, write_run

from scalelab.analysis import load_run
from scalelab.analysis.load import Run
from scalelab.exercises.context import Session, Stamp
from scalelab.experiment.summary import compute_summary
from scalelab.fileio import write_json, write_text

SPECS: dict[str, dict[str, Any]] = {
    "quickstart": {
        "name": "quickstart",
        "locustfile": "baseline.py",
        "load": {"mode": "closed", "users": 32},
        "scenario": {"endpoint": "cpu", "units": 10},
        "service": {"executor": {"kind": "direct", "max_batch": 100, "max_wait_ms": 5.0}},
    },
    "latency_open_closed": {
        "name": "latency_open_closed",
        "locustfile": "baseline.py",
        "load": {"mode": "open", "rate": 50.0, "users": 4},
        "scenario": {"endpoint": "io", "io_ms": 5},
        "faults": [{"at_s": 8.0, "stall": 1.5}],
    },
    "little_law": {
        "name": "little_law",
        "locustfile": "baseline.py",
        "load": {"mode": "open", "rate": 100.0, "max_concurrency": 2000},
        "scenario": {"endpoint": "io", "io_ms": 200, "io_dist": "exponential", "io_local": True},
    },
    "usl_sweep": {
        "name": "usl_sweep",
        "locustfile": "baseline.py",
        "load": {"mode": "closed", "users": 1},
        "scenario": {"endpoint": "cpu", "units": 10},
    },
    "observability": {
        "name": "observability",
        "locustfile": "baseline.py",
        "load": {"mode": "open", "rate": 60.0, "arrival": "poisson"},
        "scenario": {"endpoint": "io", "io_ms": 40},
        "service": {
            "stack": ["admission", "gate", "faults", "cache"],
            "cluster": {"workers": 2, "threads_per_worker": 1},
            "admission": {"max_in_flight": 1000},
            "layers": {"gate": {"use": "faults", "ingress_delay_ms": 0.0}},
        },
        "faults": [{"at_s": 10.0, "set": {"faults.error_rate": 0.3}, "until_s": 14.0}],
    },
    "caching_sweep": {
        "name": "caching_sweep",
        "locustfile": "caching.py",
        "load": {"mode": "closed", "users": 16},
        "scenario": {"keys": 1000, "dist": "zipf", "alpha": 1.0, "units": 50},
        "service": {"cache": {"policy": "lru", "size": 100}},
    },
    "failure_retries": {
        "name": "failure_retries",
        "locustfile": "baseline.py",
        "load": {"mode": "closed", "users": 4},
        "scenario": {"endpoint": "io", "io_ms": 5},
        "service": {
            "stack": ["admission", "retry", "faults", "cache"],
            "retry": {"max_attempts": 3, "backoff": "none", "budget": False, "policy": ""},
            "executor": {"kind": "direct", "retries": 0},
        },
        "faults": [
            {
                "at_s": 2.0,
                "until_s": 6.0,
                "action": "task",
                "params": {"workers": ["*"], "error_rate": 0.3, "seed": 11},
            }
        ],
    },
    "failure_breaker": {
        "name": "failure_breaker",
        "locustfile": "baseline.py",
        "load": {"mode": "closed", "users": 4},
        "scenario": {"endpoint": "io", "io_ms": 5},
        "service": {
            "stack": ["admission", "breaker", "faults", "cache"],
            "breaker": {"policy": "consecutive", "failures": 5, "open_s": 0.25},
        },
        "faults": [
            {
                "at_s": 0.6,
                "until_s": 1.6,
                "action": "task",
                "params": {"workers": ["*"], "error_rate": 1.0},
            }
        ],
    },
}


def _set(spec: dict[str, Any], dotted: str, value: Any) -> None:
    node: Any = spec
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[parts[-1]] = value


def lab_run(
    path: Path,
    experiment: str,
    requests: pd.DataFrame,
    *,
    settings: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    started_at: str = "2026-05-28T00:00:00+00:00",
    status: str = "ok",
    events: Sequence[tuple[float, str, str] | tuple[float, str, str, float]] = (),
    metrics: pd.DataFrame | None = None,
) -> Run:
    """A run of ``experiment`` at ``settings`` (dotted spec paths) holding ``requests``.

    ``events`` are ``(t, kind, name)``, or ``(t, kind, name, until)`` for a fault with an end.
    """
    params = dict(params or {})
    write_run(path, requests, params=params, run_id=path.name, experiment=experiment, status=status)
    spec = copy.deepcopy(SPECS[experiment])
    for key, value in {**dict(settings or {}), **params}.items():
        _set(spec, key, value)
    write_text(path / "spec.toml", tomli_w.dumps(spec))
    info = load_run(path).info
    info.update({"started_at": started_at, "params": params, "status": status})
    write_json(path / "run.json", info)
    summary = compute_summary(path, run_id=path.name, params=params, status=status)
    write_json(path / "summary.json", summary)
    if events:
        old = pd.read_parquet(path / "events.parquet")
        new = pd.DataFrame(
            {
                "t": [e[0] for e in events],
                "kind": [e[1] for e in events],
                "name": [e[2] for e in events],
                "detail": ["{}"] * len(events),
                "until": [float(e[3]) if len(e) > 3 else float("nan") for e in events],
            }
        )
        pd.concat([old, new], ignore_index=True).to_parquet(path / "events.parquet", index=False)
    if metrics is not None:
        old = pd.read_parquet(path / "metrics.parquet")
        pd.concat([old, metrics], ignore_index=True).to_parquet(
            path / "metrics.parquet", index=False
        )
    return load_run(path)


def closed_loop_requests(
    throughput: float, duration_s: float = 10.0, mean_ms: float = 100.0, seed: int = 0
) -> pd.DataFrame:
    """Requests finishing at ``throughput`` per second with latencies around ``mean_ms``."""
    rng = np.random.default_rng(seed)
    # Whole milliseconds: few distinct values keep the histograms quick to build.
    lat = np.maximum(np.round(rng.exponential(mean_ms, int(throughput * duration_s))), 1) * 1000
    return make_requests(
        rate=throughput,
        duration_s=duration_s,
        poisson=False,
        latencies_us=lat.astype(np.int64),
        seed=seed,
    )


def session_of(*runs: Run | Sequence[Run], cell: int = 5) -> Session:
    """A grader's session that saw ``runs`` made in cell ``cell``."""
    session = Session()
    for item in runs:
        for run in [item] if isinstance(item, Run) else item:
            session.runs[Path(run.path).resolve()] = Stamp(cell, T0)
    return session


def cache_requests(hit_ratio: float, n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Keyed reads (``/task/key``) of which a share ``hit_ratio`` were cache hits."""
    rng = np.random.default_rng(seed)
    req = make_requests(
        rate=n / 10.0, duration_s=10.0, latency="exponential", mean_ms=2.0, seed=seed
    )
    hits = rng.random(len(req)) < hit_ratio
    req["name"] = pd.Series(["/task/key"] * len(req), dtype="string")
    req["cache"] = pd.Series(np.where(hits, "hit", "miss"), dtype="string")
    return req


def poisson_requests(rate: float, duration_s: float, mean_ms: float, seed: int = 0) -> pd.DataFrame:
    """Poisson arrivals with exponential latencies in whole milliseconds (an M/M/inf system)."""
    rng = np.random.default_rng(seed + 1)
    n = int(rate * duration_s * 1.2)
    lat = np.maximum(np.round(rng.exponential(mean_ms, n)), 1).astype(np.int64) * 1000
    return make_requests(rate=rate, duration_s=duration_s, seed=seed, latencies_us=lat)
