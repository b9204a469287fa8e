"""summary.json figures from a real HDR log and requests.parquet."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rundirs import make_requests, write_run

from scalelab import hdr
from scalelab.experiment.summary import FIGURES, compute_summary


def _write_run(
    run: Path, intended_us: list[int], actual_us: list[int], ok: list[bool], t0: float = 1000.0
) -> list[float]:
    """A run directory like the recorder writes: one request every 10 ms from t0."""
    run.mkdir(parents=True, exist_ok=True)
    n = len(intended_us)
    intended_start = [t0 + i * 0.01 for i in range(n)]
    start = [
        s + (i - a) / 1e6 for s, i, a in zip(intended_start, intended_us, actual_us, strict=True)
    ]
    table = pa.table(
        {
            "intended_start": pa.array(intended_start, pa.float64()),
            "start": pa.array(start, pa.float64()),
            "latency_us": pa.array(actual_us, pa.int64()),
            "latency_intended_us": pa.array(intended_us, pa.int64()),
            "status": pa.array([200 if o else 500 for o in ok], pa.int32()),
            "ok": pa.array(ok, pa.bool_()),
        }
    )
    pq.write_table(table, run / "requests.parquet")
    hists = {"intended": hdr.new_histogram(), "actual": hdr.new_histogram()}
    for i, a in zip(intended_us, actual_us, strict=True):
        hists["intended"].record_value(hdr.clamp_us(i))
        hists["actual"].record_value(hdr.clamp_us(a))
    hdr.write_log(run / "latency.hdr", hists, t0, t0 + n * 0.01)
    return intended_start


def test_summary_from_hdr_log_and_records(tmp_path: Path) -> None:
    rng = random.Random(7)
    actual = [int(rng.expovariate(1 / 4000)) + 100 for _ in range(2000)]
    intended = [a + (50_000 if i % 100 == 0 else 0) for i, a in enumerate(actual)]
    ok = [i % 50 != 0 for i in range(2000)]  # 40 failures
    starts = _write_run(tmp_path, intended, actual, ok)
    s = compute_summary(tmp_path, run_id="000-r0", params={"load.users": 4}, status="ok")

    assert set(FIGURES) <= set(s)
    assert s["requests"] == 2000 and s["errors"] == 40
    assert s["error_rate"] == pytest.approx(0.02)
    last = max(st + a / 1e6 for st, a in zip(starts, actual, strict=True))
    assert s["duration_s"] == pytest.approx(last - starts[0])
    assert s["throughput_rps"] == pytest.approx(2000 / s["duration_s"])
    assert s["ok_throughput_rps"] == pytest.approx(1960 / s["duration_s"])
    srt = sorted(intended)
    assert s["p50_ms"] == pytest.approx(srt[999] / 1000, rel=2e-3)
    assert s["p99_ms"] == pytest.approx(srt[1979] / 1000, rel=2e-3)
    assert s["max_ms"] == pytest.approx(max(intended) / 1000, rel=2e-3)
    assert s["actual_p99_ms"] == pytest.approx(sorted(actual)[1979] / 1000, rel=2e-3)
    # The corrected tail is heavier than the actual one: 1 % of requests waited 50 ms more.
    assert s["p999_ms"] > s["actual_p99_ms"]
    assert s["params"] == {"load.users": 4} and s["run_id"] == "000-r0"
    json.dumps(s, allow_nan=False)


def test_warmup_is_left_out(tmp_path: Path) -> None:
    n = 1000
    # The first 200 requests (2 s) are slow: warm-up.
    actual = [90_000 if i < 200 else 1_000 for i in range(n)]
    starts = _write_run(tmp_path, actual, actual, [True] * n)
    full = compute_summary(tmp_path)
    measured = compute_summary(tmp_path, measure_from=starts[200])
    assert full["requests"] == n and measured["requests"] == n - 200
    assert full["p90_ms"] == pytest.approx(90.0, rel=2e-3)
    assert measured["p99_ms"] == pytest.approx(1.0, rel=2e-3)
    assert measured["duration_s"] == pytest.approx(starts[-1] + 0.001 - starts[200])


def test_missing_files(tmp_path: Path) -> None:
    empty = compute_summary(tmp_path / "none", run_id="x", status="failed")
    assert empty["requests"] is None and empty["p99_ms"] is None and empty["status"] == "failed"
    json.dumps(empty, allow_nan=False)
    _write_run(tmp_path, [1000] * 10, [1000] * 10, [True] * 10)
    s = compute_summary(tmp_path)
    assert s["requests"] == 10 and s["dropped"] == 0 and "late" not in s  # no loadgen.json
    (tmp_path / "requests.parquet").unlink()
    only_hdr = compute_summary(tmp_path)
    assert only_hdr["requests"] == 10 and only_hdr["errors"] is None


def _open_loop_run(run: Path) -> pd.DataFrame:
    """An open loop at 100/s for 10 s: reads, writes, drops, late sends, a scraped counter.

    Rows 0-99 are the warm-up (the first second). Every 4th row is a write
    (``PUT /kv``, answered ``X-Cache: miss`` like the service's writes), every
    10th a drop, every 7th sent 30 ms late; reads are answered hit, coalesced,
    stale, miss in turn.
    """
    t0 = 1000.0
    req = make_requests(
        rate=100, duration_s=10, seed=1, latency="fixed", mean_ms=2.0, t0=t0, poisson=False
    )
    n = len(req)
    i = np.arange(n)
    write, drop, late = i % 4 == 0, i % 10 == 0, (i % 7 == 0) & (i % 10 != 0)
    req["method"] = np.where(write, "PUT", "GET")
    req["name"] = np.where(write, "/kv", "/task/key")
    req["cache"] = np.array(["hit", "coalesced", "stale", "miss"])[(i // 2) % 4]
    req.loc[write, "cache"] = "miss"
    req.loc[late, "start"] += 0.030
    req.loc[late, "latency_intended_us"] += 30_000
    req.loc[drop, ["method", "name", "cache", "ok"]] = ["DROPPED", "dropped", "", False]
    req.loc[drop, ["latency_us", "latency_intended_us", "status"]] = 0
    truth = write_run(run, req, warmup_s=1.0)
    (run / "loadgen.json").write_text(json.dumps({"load_mode": "open", "late_ms": 10.0}))
    scrapes = np.arange(-2.0, 13.0) + t0  # once a second, before and after the load
    calls = np.maximum(scrapes - t0, 0.0) * 7.0  # 7 computations a second
    pd.DataFrame(
        {
            "t": scrapes,
            "source": "service",
            "metric": "scalelab_cache_origin_calls_total",
            "labels": "",
            "value": calls,
        }
    ).to_parquet(run / "metrics.parquet", index=False)
    return truth.requests


def test_counts_follow_one_definition_of_sent_read_and_window(tmp_path: Path) -> None:
    """requests and throughput count what was sent, dropped rows apart; the cache's figures
    count reads only (a PUT's X-Cache is a write's); origin calls cover the same window."""
    from scalelab.analysis import load_run
    from scalelab.analysis.caching import hit_ratio, origin_calls, served_ratio

    req = _open_loop_run(tmp_path)
    measure_from = float(req["intended_start"].min()) + 1.0
    s = compute_summary(tmp_path, measure_from=measure_from)
    window = req[req["intended_start"] >= measure_from]
    dropped = window["method"] == "DROPPED"
    sent = window[~dropped]
    assert s["requests"] == len(sent) == 810 and s["dropped"] == int(dropped.sum()) == 90
    assert s["errors"] == 0
    assert s["throughput_rps"] == pytest.approx(len(sent) / s["duration_s"])
    assert s["late"] == int((sent["start"] - sent["intended_start"] > 0.010).sum()) > 0
    reads = sent[sent["method"] == "GET"]
    assert s["cache_reads"] == len(reads)
    assert s["cache_hit_ratio"] == pytest.approx((reads["cache"] == "hit").mean())
    served = reads["cache"].isin(["hit", "coalesced"]).mean()
    assert s["cache_served_ratio"] == pytest.approx(served)
    every_answer = (sent["cache"] == "hit").sum() / (sent["cache"] != "").sum()
    assert s["cache_hit_ratio"] > every_answer + 0.02  # writes' "miss" would lower it
    # the counter from the last scrape before the window (t0 + 1) to the first after its end
    end = float((sent["start"] + sent["latency_us"] / 1e6).max())
    assert s["origin_calls"] == (np.ceil(end - 1000.0) - 1.0) * 7.0 == 63.0

    # the analysis says the same of the same run
    run = load_run(tmp_path)
    assert run.measure_from == pytest.approx(measure_from)
    assert hit_ratio(run) == pytest.approx(s["cache_hit_ratio"])
    assert served_ratio(run) == pytest.approx(s["cache_served_ratio"])
    assert origin_calls(run) == s["origin_calls"]
    assert origin_calls(run, measured=False) == 12 * 7.0


def test_cache_hit_ratio_counts_reads_only() -> None:
    from scalelab.experiment.summary import cache_figures, cache_hit_ratio

    assert cache_hit_ratio({"cache": ["", "", ""], "method": ["GET"] * 3}) is None
    assert cache_hit_ratio({}) is None
    records = {
        "cache": ["hit", "miss", "", "stale", "coalesced", "hit", "miss", "miss"],
        "method": ["GET", "GET", "GET", "GET", "GET", "GET", "PUT", "PUT"],
    }
    assert cache_hit_ratio(records) == 2 / 5  # the PUTs' "miss" are writes
    assert cache_figures(records) == {
        "cache_reads": 5,
        "cache_hit_ratio": 2 / 5,
        "cache_served_ratio": 3 / 5,
    }
