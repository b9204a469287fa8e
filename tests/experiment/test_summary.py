"""summary.json figures from a real HDR log and requests.parquet."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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


def test_loadgen_counts_and_missing_files(tmp_path: Path) -> None:
    empty = compute_summary(tmp_path / "none", run_id="x", status="failed")
    assert empty["requests"] is None and empty["p99_ms"] is None and empty["status"] == "failed"
    json.dumps(empty, allow_nan=False)
    _write_run(tmp_path, [1000] * 10, [1000] * 10, [True] * 10)
    (tmp_path / "loadgen.json").write_text(json.dumps({"late": 3, "dropped": 1, "other": 2}))
    s = compute_summary(tmp_path)
    assert s["late"] == 3 and s["dropped"] == 1 and "other" not in s
    (tmp_path / "requests.parquet").unlink()
    only_hdr = compute_summary(tmp_path)
    assert only_hdr["requests"] == 10 and only_hdr["errors"] is None


def test_cache_hit_ratio_counts_only_answers_with_x_cache() -> None:
    from scalelab.experiment.summary import cache_hit_ratio

    assert cache_hit_ratio({"cache": ["", "", ""]}) is None
    assert cache_hit_ratio({}) is None
    ratio = cache_hit_ratio({"cache": ["hit", "miss", "", "stale", "coalesced", "hit"]})
    assert ratio == 2 / 5
