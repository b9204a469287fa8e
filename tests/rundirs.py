"""Synthetic run and experiment directories, written exactly as docs/results-format.md says.

Requests are drawn from known distributions (seeded), so analysis results can be
checked against the truth: the distribution's own percentiles, the arrival rate,
the in-flight count a service would have measured.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w

from scalelab import hdr
from scalelab.fileio import write_json, write_text
from scalelab.loadgen.records import DROPPED_METHOD

T0 = 1_780_000_000.0  # a fixed Unix time, so runs are reproducible


def sample_latency_us(
    kind: str, n: int, rng: np.random.Generator, mean_ms: float = 5.0, **kw: float
) -> np.ndarray:
    """``n`` latencies in µs: ``fixed``, ``exponential``, ``lognormal`` or ``bimodal``.

    ``bimodal`` draws ``fast_ms`` with probability ``1 - slow_share`` and ``slow_ms`` otherwise,
    each with ±5 % uniform jitter.
    """
    if kind == "fixed":
        ms = np.full(n, mean_ms)
    elif kind == "exponential":
        ms = rng.exponential(mean_ms, n)
    elif kind == "lognormal":
        sigma = kw.get("sigma", 0.5)
        ms = rng.lognormal(math.log(mean_ms) - sigma**2 / 2, sigma, n)
    elif kind == "bimodal":
        slow = rng.random(n) < kw.get("slow_share", 0.1)
        base = np.where(slow, kw.get("slow_ms", 100.0), kw.get("fast_ms", 2.0))
        ms = base * rng.uniform(0.95, 1.05, n)
    else:
        raise ValueError(kind)
    return np.maximum(np.round(ms * 1000.0), 1).astype(np.int64)


def exponential_percentile_ms(mean_ms: float, q: float) -> float:
    """The true percentile ``q`` (0-100) of an exponential distribution."""
    return -mean_ms * math.log(1.0 - q / 100.0)


def make_requests(
    rate: float = 200.0,
    duration_s: float = 10.0,
    latency: str = "exponential",
    mean_ms: float = 5.0,
    seed: int = 0,
    t0: float = T0,
    error_rate: float = 0.0,
    poisson: bool = True,
    latencies_us: np.ndarray | None = None,
    **dist: float,
) -> pd.DataFrame:
    """An open-loop requests frame: arrivals at ``rate`` for ``duration_s``, sent on time."""
    rng = np.random.default_rng(seed)
    if poisson:
        gaps = rng.exponential(1.0 / rate, int(rate * duration_s * 1.5) + 10)
        arrivals = t0 + np.cumsum(gaps) - gaps[0]
        arrivals = arrivals[arrivals < t0 + duration_s]
    else:
        arrivals = t0 + np.arange(int(rate * duration_s)) / rate
    n = len(arrivals)
    if latencies_us is None:
        lat = sample_latency_us(latency, n, rng, mean_ms=mean_ms, **dist)
    else:
        lat = np.asarray(latencies_us, dtype=np.int64)[:n]
        arrivals = arrivals[: len(lat)]
        n = len(lat)
    ok = rng.random(n) >= error_rate
    return pd.DataFrame(
        {
            "intended_start": arrivals.astype(np.float64),
            "start": arrivals.astype(np.float64),
            "latency_us": lat,
            "latency_intended_us": lat.copy(),
            "status": np.where(ok, 200, 500).astype(np.int32),
            "ok": ok,
            "name": pd.Series(["/task/io"] * n, dtype="string"),
            "method": pd.Series(["GET"] * n, dtype="string"),
            "bytes": np.full(n, 42, dtype=np.int64),
            "error": pd.Series(np.where(ok, "", "HTTPError('500 Server Error')"), dtype="string"),
            "worker": pd.Series(["tcp://127.0.0.1:40001"] * n, dtype="string"),
            "batch_size": np.zeros(n, dtype=np.int32),
            "cache": pd.Series([""] * n, dtype="string"),
            "partition": pd.Series([""] * n, dtype="string"),
            "attempts": np.ones(n, dtype=np.int32),
            "process": np.zeros(n, dtype=np.int32),
        }
    )


def with_dropped(requests: pd.DataFrame, share: float, seed: int = 0) -> pd.DataFrame:
    """``requests`` with a random ``share`` of them turned into rows the open loop never sent.

    Such a row is what the recorder writes for a drop: method ``DROPPED``, name
    ``dropped``, no status, no latency, a failure, started when it was due.
    """
    out = requests.copy()
    drop = np.random.default_rng(seed).random(len(out)) < share
    out.loc[drop, "method"] = DROPPED_METHOD
    out.loc[drop, "name"] = "dropped"
    out.loc[drop, ["latency_us", "latency_intended_us", "bytes", "attempts"]] = 0
    out.loc[drop, "status"] = 0
    out.loc[drop, "ok"] = False
    out.loc[drop, "error"] = "OpenLoopDropped('10 requests in flight')"
    out.loc[drop, "worker"] = ""
    out.loc[drop, "start"] = out.loc[drop, "intended_start"]
    return out


def histogram_of(latencies_us: np.ndarray) -> Any:
    """An HdrHistogram of the given latencies (µs)."""
    h = hdr.new_histogram()
    values, counts = np.unique(np.asarray(latencies_us, dtype=np.int64), return_counts=True)
    for v, c in zip(values, counts, strict=True):
        h.record_value(hdr.clamp_us(int(v)), int(c))
    return h


def in_flight_at(requests: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Requests outstanding at each time (start <= t < end), as a service gauge would read."""
    starts = np.sort(requests["start"].to_numpy())
    ends = np.sort(requests["start"].to_numpy() + requests["latency_us"].to_numpy() / 1e6)
    return np.searchsorted(starts, times, "right") - np.searchsorted(ends, times, "right")


@dataclass
class RunTruth:
    """What a synthetic run was generated from."""

    path: Path
    run_id: str
    params: dict[str, Any]
    requests: pd.DataFrame = field(repr=False)


def write_run(
    path: Path,
    requests: pd.DataFrame,
    params: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    experiment: str = "synthetic",
    status: str = "ok",
    files: Sequence[str] = ("spec", "requests", "hdr", "metrics", "events", "summary"),
    startup_s: float = 1.5,
    warmup_s: float = 0.0,
) -> RunTruth:
    """Write one run directory from ``requests``; ``files`` picks which optional files exist.

    As a real run does, the ``load_start`` event comes ``startup_s`` before the first
    request (the load generator starting), ``latency.hdr`` holds every request sent (rows
    whose method is ``DROPPED`` never were), and summary.json leaves out those meant to
    start within ``warmup_s`` of the first request (recorded as the ``measure_start`` event).
    """
    path.mkdir(parents=True, exist_ok=True)
    params = dict(params or {})
    run_id = run_id or path.name
    t_first_all = float(requests["intended_start"].min()) if len(requests) else T0
    load_start = t_first_all - startup_s
    sent = requests[requests["method"] != DROPPED_METHOD]
    all_hists = {
        "intended": histogram_of(sent["latency_intended_us"].to_numpy()),
        "actual": histogram_of(sent["latency_us"].to_numpy()),
    }
    measure_start = t_first_all + warmup_s
    req = sent[sent["intended_start"] >= measure_start] if warmup_s > 0 else sent
    t_first = float(req["intended_start"].min()) if len(req) else T0
    ends = requests["start"] + requests["latency_us"] / 1e6
    t_last = float(ends.max()) if len(requests) else T0
    load_stop = t_last + 0.2
    duration = max(t_last - t_first, 1e-9)
    hists = {
        "intended": histogram_of(req["latency_intended_us"].to_numpy()),
        "actual": histogram_of(req["latency_us"].to_numpy()),
    }
    if "spec" in files:
        spec = {
            "name": experiment,
            "locustfile": "scenarios/baseline.py",
            "duration_s": round(duration),
            "warmup_s": warmup_s,
            "repeats": 1,
            "load": {"mode": "open", "rate": len(req) / duration},
        }
        write_text(path / "spec.toml", tomli_w.dumps(spec))
    if "requests" in files:
        requests.to_parquet(path / "requests.parquet", index=False)
    if "hdr" in files:
        hdr.write_log(path / "latency.hdr", all_hists, t_first_all, t_last)
    if "metrics" in files:
        times = np.arange(math.floor(load_start), math.ceil(t_last) + 1, 1.0)
        inflight = in_flight_at(requests, times)
        rows = [
            pd.DataFrame(
                {
                    "t": times,
                    "source": "service",
                    "metric": "scalelab_in_flight",
                    "labels": "",
                    "value": inflight.astype(float),
                }
            ),
            pd.DataFrame(
                {
                    "t": times,
                    "source": "scheduler",
                    "metric": "dask_scheduler_workers",
                    "labels": "",
                    "value": 2.0,
                }
            ),
        ]
        pd.concat(rows, ignore_index=True).to_parquet(path / "metrics.parquet", index=False)
    if "events" in files:
        phases = [(load_start - 1.0, "service_ready"), (load_start, "load_start")]
        if warmup_s > 0:
            phases.append((measure_start, "measure_start"))
        phases.append((load_stop, "load_stop"))
        pd.DataFrame(
            {
                "t": [t for t, _ in phases],
                "kind": ["phase"] * len(phases),
                "name": [n for _, n in phases],
                "detail": ["{}"] * len(phases),
            }
        ).to_parquet(path / "events.parquet", index=False)
    summary: dict[str, Any] = {}
    if "summary" in files:
        errors = int((~req["ok"]).sum())
        pi = hdr.percentiles_ms(hists["intended"], [50, 90, 99, 99.9])
        pa = hdr.percentiles_ms(hists["actual"], [50, 99])
        summary = {
            "requests": len(req),
            "errors": errors,
            "error_rate": errors / len(req) if len(req) else 0.0,
            "throughput_rps": len(req) / duration,
            "ok_throughput_rps": (len(req) - errors) / duration,
            "p50_ms": pi[50],
            "p90_ms": pi[90],
            "p99_ms": pi[99],
            "p999_ms": pi[99.9],
            "max_ms": hists["intended"].get_max_value() / 1000.0,
            "mean_ms": hists["intended"].get_mean_value() / 1000.0,
            "actual_p50_ms": pa[50],
            "actual_p99_ms": pa[99],
            "duration_s": duration,
            "params": params,
            "run_id": run_id,
            "status": status,
        }
        write_json(path / "summary.json", summary)
    write_json(
        path / "run.json",
        {
            "run_id": run_id,
            "experiment": experiment,
            "status": status,
            "error": None if status == "ok" else "the service stopped answering",
            "params": params,
            "started_at": "2026-05-28T00:00:00+00:00",
            "ended_at": "2026-05-28T00:00:30+00:00",
            "duration_s": duration,
            "service_url": "http://127.0.0.1:8000",
            "scheduler": "inproc",
            "dashboard_link": "http://127.0.0.1:8787/status",
            "versions": {"python": "3.11", "scalelab": "0.1.0"},
            "git_commit": None,
            "host": {"hostname": "test", "cpus": 2, "memory": 24 * 2**30},
        },
    )
    return RunTruth(path=path, run_id=run_id, params=params, requests=requests)


def run_id_for(index: int, params: Mapping[str, Any], repeat: int) -> str:
    """``NNN-<last part of each key>=<value>-rK`` as the results format names runs."""
    parts = "-".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in params.items())
    return f"{index:03d}-{parts}-r{repeat}" if parts else f"{index:03d}-r{repeat}"


def write_experiment(
    root: Path,
    runs: Sequence[tuple[Mapping[str, Any], pd.DataFrame]],
    name: str = "synthetic",
    stamp: str = "20260528-000000",
    repeats: int = 1,
) -> tuple[Path, list[RunTruth]]:
    """Write ``root/name/stamp`` with one run per (params, requests) and a ``latest`` link.

    Runs sharing params count as repeats (``-r0``, ``-r1``...) in the order given.
    """
    exp = root / name / stamp
    exp.mkdir(parents=True, exist_ok=True)
    truths: list[RunTruth] = []
    seen: dict[str, int] = {}
    for i, (params, req) in enumerate(runs):
        key = json.dumps(dict(params), sort_keys=True, default=str)
        rep = seen.get(key, 0)
        seen[key] = rep + 1
        rid = run_id_for(i, params, rep)
        truths.append(write_run(exp / rid, req, params=params, run_id=rid, experiment=name))
    rows = []
    for t in truths:
        summary = json.loads((t.path / "summary.json").read_text())
        row = {"run_id": t.run_id, "status": summary["status"], **t.params}
        row.update({k: v for k, v in summary.items() if isinstance(v, int | float)})
        rows.append(row)
    table = pd.DataFrame(rows)
    table.to_parquet(exp / "runs.parquet", index=False)
    table.to_csv(exp / "runs.csv", index=False)
    write_json(
        exp / "experiment.json",
        {
            "name": name,
            "spec": f"scenarios/{name}.toml",
            "started_at": "2026-05-28T00:00:00+00:00",
            "ended_at": "2026-05-28T00:05:00+00:00",
            "status": "ok",
            "run_ids": [t.run_id for t in truths],
        },
    )
    latest = root / name / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(stamp)
    return exp, truths
