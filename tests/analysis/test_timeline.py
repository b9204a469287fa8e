"""What the processes did and when faults were on, from metrics.parquet and events.parquet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rundirs import make_requests, write_run

from scalelab.analysis import load_run
from scalelab.analysis.timeline import fault_windows, resource_series

WORKER = "tcp://127.0.0.1:40001"


def _metrics(times: np.ndarray, embedded: bool) -> pd.DataFrame:
    """Counters and gauges with known rates: service 30 % CPU, worker 50 %, 100 tasks/s."""
    rows: list[tuple[float, str, str, str, float]] = []
    dt = times - times[0]
    for t, d in zip(times, dt, strict=True):
        rows += [
            (t, "service", "process_cpu_seconds_total", "", 1.0 + 0.3 * d),
            (t, "service", "process_start_time_seconds", "", 1000.0),
            (t, "service", "scalelab_in_flight", "", 7.0),
            (t, "service", "scalelab_dask_tasks_submitted_total", "", 90.0 * d),
            (t, "scheduler", "process_cpu_seconds_total", "", 5.0 + 0.2 * d),
            (t, "scheduler", "process_start_time_seconds", "", 1000.0 if embedded else 900.0),
            (t, "scheduler", "dask_scheduler_tasks", "state=processing", 2.0),
            (t, "scheduler", "dask_scheduler_tasks", "state=memory", 40.0),
            (
                t,
                "scheduler",
                "dask_scheduler_prefix_state_totals_total",
                "state=memory,task_prefix_name=a",
                60.0 * d,
            ),
            (
                t,
                "scheduler",
                "dask_scheduler_prefix_state_totals_total",
                "state=memory,task_prefix_name=b",
                40.0 * d,
            ),
            (
                t,
                "scheduler",
                "dask_scheduler_prefix_state_totals_total",
                "state=released,task_prefix_name=a",
                500.0 * d,
            ),
            (t, "worker", "process_cpu_seconds_total", f"worker={WORKER}", 0.5 * d),
        ]
    return pd.DataFrame(rows, columns=["t", "source", "metric", "labels", "value"])


def _run_with(tmp_path: Path, embedded: bool = True, events: pd.DataFrame | None = None) -> Path:
    req = make_requests(rate=50, duration_s=6, seed=3)
    truth = write_run(tmp_path / "r", req)
    t0 = float(req["intended_start"].min())
    _metrics(t0 - 1.0 + np.arange(9, dtype=float), embedded).to_parquet(
        truth.path / "metrics.parquet", index=False
    )
    if events is not None:
        old = pd.read_parquet(truth.path / "events.parquet")
        events = events.assign(t=events["t"] + t0)
        pd.concat([old, events]).to_parquet(truth.path / "events.parquet", index=False)
    return truth.path


def _series(frame: pd.DataFrame, kind: str) -> dict[str, np.ndarray]:
    part = frame[frame["kind"] == kind]
    return {str(k): g["value"].to_numpy() for k, g in part.groupby("series")}


def test_cpu_in_flight_and_task_rates_from_the_counters(tmp_path: Path) -> None:
    run = load_run(_run_with(tmp_path, embedded=True))
    frame = resource_series(run)
    assert set(frame.columns) == {"t", "kind", "series", "value"}
    cpu = _series(frame, "cpu_percent")
    # The scheduler lives in the service's process: one series, not the same CPU twice.
    assert set(cpu) == {"service (with the scheduler)", "worker :40001"}
    assert cpu["service (with the scheduler)"] == pytest.approx(30.0)
    assert cpu["worker :40001"] == pytest.approx(50.0)
    flight = _series(frame, "in_flight")
    assert flight["requests in the service"] == pytest.approx(7.0)
    assert flight["Dask tasks processing"] == pytest.approx(2.0)  # not the 40 in memory
    tasks = _series(frame, "tasks_per_s")
    assert tasks["finished (scheduler)"] == pytest.approx(100.0)  # both prefixes, memory only
    assert tasks["submitted (service)"] == pytest.approx(90.0)
    # time counts from the first request: the first rate lands 0 s after it
    first = frame[frame["series"] == "worker :40001"]["t"].min()
    assert first == pytest.approx(0.0)


def test_a_scheduler_of_its_own_gets_its_own_cpu_and_resets_are_skipped(tmp_path: Path) -> None:
    path = _run_with(tmp_path, embedded=False)
    m = pd.read_parquet(path / "metrics.parquet")
    worker = (m["source"] == "worker") & (m["metric"] == "process_cpu_seconds_total")
    reset_at = m.loc[worker, "t"].sort_values().iloc[4]
    m.loc[worker & (m["t"] >= reset_at), "value"] -= 2.0  # the worker restarted
    m.to_parquet(path / "metrics.parquet", index=False)
    cpu = _series(resource_series(load_run(path)), "cpu_percent")
    assert set(cpu) == {"service", "scheduler", "worker :40001"}
    assert cpu["scheduler"] == pytest.approx(20.0)
    assert len(cpu["worker :40001"]) == 7  # 8 intervals, the one across the reset left out
    assert cpu["worker :40001"] == pytest.approx(50.0)


def test_no_metrics_gives_an_empty_frame(tmp_path: Path) -> None:
    truth = write_run(tmp_path / "r", make_requests(rate=20, duration_s=2), files=("requests",))
    frame = resource_series(load_run(truth.path))
    assert frame.empty and list(frame.columns) == ["t", "kind", "series", "value"]


def _event(t: float, name: str, **detail: object) -> dict[str, object]:
    return {"t": t, "kind": "fault", "name": name, "detail": json.dumps(detail)}


def test_fault_windows_pair_sets_with_their_reverts(tmp_path: Path) -> None:
    events = pd.DataFrame(
        [
            _event(1.0, "stall", index=0, seconds=0.5, ok=True),
            _event(2.0, "set", index=1, values={"faults.error_rate": 0.2}, ok=True),
            _event(3.0, "stall", index=2, seconds=1.0, ok=False),  # refused: never happened
            _event(3.5, "revert", index=1, values={"faults.error_rate": 0.0}, ok=True),
            _event(4.0, "set", index=3, values={"admission.max_in_flight": 5}, ok=True),
            _event(4.5, "partition", end_offset=0.0),
        ]
    )
    path = _run_with(tmp_path, events=events)
    windows = fault_windows(load_run(path))
    load_stop = load_run(path).event_time("load_stop")
    t0 = float(load_run(path).requests["intended_start"].min())
    assert list(windows["name"]) == ["stall", "set", "set", "partition"]
    assert list(windows["label"]) == [
        "stall 0.5 s",
        "error_rate=0.2",
        "max_in_flight=5",
        "partition",
    ]
    assert windows["start"].tolist() == pytest.approx([1.0, 2.0, 4.0, 4.5])
    # a set without its revert lasts to the end of the load; an instant has no length
    assert windows["end"].tolist() == pytest.approx([1.5, 3.5, load_stop - t0, 4.5])
