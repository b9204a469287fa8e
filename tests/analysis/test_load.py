"""Loading run and experiment directories as docs/results-format.md lays them out."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from rundirs import make_requests, write_experiment, write_run

from scalelab.analysis import (
    Experiment,
    is_experiment_dir,
    is_run_dir,
    load_experiment,
    load_run,
    requests_frame,
    runs_frame,
)
from scalelab.errors import ScaleLabError


def test_load_run_reads_every_file(tmp_path: Path) -> None:
    req = make_requests(rate=100, duration_s=5, seed=7, error_rate=0.1)
    write_run(tmp_path / "000-users=4-r0", req, params={"load.users": 4})
    run = load_run(tmp_path / "000-users=4-r0")
    assert run.run_id == "000-users=4-r0"
    assert run.status == "ok"
    assert run.params == {"load.users": 4}
    assert run.summary["requests"] == len(req)
    assert run.info["host"]["cpus"] == 2
    assert run.spec["locustfile"] == "scenarios/baseline.py"
    assert len(run.requests) == len(req)
    assert run.histograms["intended"].get_total_count() == len(req)
    assert set(run.histograms) == {"intended", "actual"}
    assert run.event_time("load_start") == pytest.approx(req["intended_start"].min())
    assert set(run.metrics["source"]) == {"service", "scheduler"}
    assert run.repeat == 0
    assert run.label == "users=4 r0"


def test_failed_run_without_optional_files_gives_empty_frames(tmp_path: Path) -> None:
    req = make_requests(rate=50, duration_s=2, seed=1)
    write_run(tmp_path / "run", req, status="failed", files=())
    run = load_run(tmp_path / "run")
    assert run.status == "failed"
    assert run.summary == {}
    assert run.spec == {}
    assert run.requests.empty and "latency_us" in run.requests.columns
    assert run.metrics.empty and "metric" in run.metrics.columns
    assert run.events.empty
    assert run.histograms == {}
    assert run.histogram("intended").get_total_count() == 0
    assert run.event_time("load_start") is None


def test_load_experiment_from_dir_latest_or_results_folder(two_kinds: Experiment) -> None:
    exp_dir = two_kinds.path
    for path in (exp_dir, exp_dir.parent / "latest", exp_dir.parent):
        exp = load_experiment(path)
        assert exp.path == exp_dir
        assert [r.run_id for r in exp.runs] == [r.run_id for r in two_kinds.runs]
    assert two_kinds.name == "quick"
    assert is_experiment_dir(exp_dir)
    assert not is_experiment_dir(exp_dir.parent)  # results/<experiment> holds stamps, not runs
    assert not is_run_dir(exp_dir)
    assert is_run_dir(two_kinds.runs[0].path)
    assert not is_experiment_dir(two_kinds.runs[0].path)


def test_experiment_table_has_params_and_summary(two_kinds: Experiment) -> None:
    table = runs_frame(two_kinds)
    assert len(table) == 4
    assert list(table["service.executor.kind"]) == ["direct", "direct", "batched", "batched"]
    assert list(table["repeat"]) == [0, 1, 0, 1]
    for col in ("run_id", "status", "requests", "throughput_rps", "p50_ms", "p99_ms", "p999_ms"):
        assert col in table.columns
    assert pd.api.types.is_float_dtype(table["p99_ms"])
    assert two_kinds.swept == ["service.executor.kind"]
    table.loc[0, "requests"] = -1
    assert two_kinds.table.loc[0, "requests"] != -1  # runs_frame returns a copy


def test_requests_frame_carries_run_id_and_params(two_kinds: Experiment) -> None:
    df = requests_frame(two_kinds)
    assert len(df) == sum(len(r.requests) for r in two_kinds.runs)
    assert set(df["run_id"]) == {r.run_id for r in two_kinds.runs}
    assert set(df["service.executor.kind"]) == {"direct", "batched"}
    first = df[df["run_id"] == two_kinds.runs[0].run_id]
    assert first["latency_ms"].to_numpy() * 1000 == pytest.approx(first["latency_us"].to_numpy())
    assert (first["end"] >= first["start"]).all()


def test_bad_paths_name_the_input(tmp_path: Path) -> None:
    with pytest.raises(ScaleLabError, match="not a run directory"):
        load_run(tmp_path)
    with pytest.raises(ScaleLabError, match=str(tmp_path / "nope")):
        load_experiment(tmp_path / "nope")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{not json")
    with pytest.raises(ScaleLabError, match="not valid JSON"):
        load_run(tmp_path / "run")


def test_experiment_orders_runs_by_experiment_json(tmp_path: Path) -> None:
    runs = [({"n": i}, make_requests(rate=20, duration_s=1, seed=i)) for i in range(3)]
    exp_dir, truths = write_experiment(tmp_path, runs)
    exp = load_experiment(exp_dir)
    assert [r.run_id for r in exp.runs] == [t.run_id for t in truths]
    assert exp.run(truths[1].run_id).params == {"n": 1}
    with pytest.raises(ScaleLabError, match="no run"):
        exp.run("missing")


def test_warm_up_is_left_out_as_summary_json_does(tmp_path: Path) -> None:
    from scalelab.analysis import little_law, merged_histogram, per_second, percentile_table

    req = make_requests(rate=200, duration_s=8, seed=3, latency="fixed", mean_ms=5.0)
    cold = req["intended_start"] < req["intended_start"].min() + 0.5
    req.loc[cold, ["latency_us", "latency_intended_us"]] = 400_000  # a slow, cold start
    # load_start comes 1.5 s before the first request; the warm-up counts from the first request
    truth = write_run(tmp_path / "r", req, startup_s=1.5, warmup_s=0.5)
    run = load_run(truth.path)
    assert run.warmup_s == 0.5
    assert run.measure_from == pytest.approx(req["intended_start"].min() + 0.5)
    assert len(run.measured_requests) == run.summary["requests"] < len(req)
    # latency.hdr holds every request; the analysis reads the measured ones, as summary.json
    assert run.histogram().get_value_at_percentile(99) / 1000 == pytest.approx(400, rel=0.01)
    table = percentile_table(run)
    assert table.loc[run.run_id, "p99_ms"] == pytest.approx(run.summary["p99_ms"])
    assert run.summary["p99_ms"] == pytest.approx(5.0, rel=1e-3)
    assert merged_histogram([run]).get_total_count() == run.summary["requests"]
    # time series start at the first request and keep the warm-up
    ps = per_second(run)
    assert ps.attrs["t0"] == pytest.approx(req["intended_start"].min())
    assert ps["requests"].iloc[0] > 0 and ps["requests"].sum() == len(req)
    assert little_law(run).window[0] >= run.measure_from
    frame = requests_frame(run)
    assert int(frame["measured"].sum()) == run.summary["requests"]
