"""Plots draw what the analysis computed, on given axes or new ones, without a display."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from rundirs import histogram_of, make_requests, write_experiment, write_run  # noqa: E402

from scalelab import plots  # noqa: E402
from scalelab.analysis import (  # noqa: E402
    Experiment,
    fit_usl,
    group_percentiles,
    load_experiment,
    load_run,
    per_second,
    usl_throughput,
)


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    root = tmp_path_factory.mktemp("results")
    runs = [
        ({"load.users": u}, make_requests(rate=100 * u, duration_s=4, mean_ms=1.0 + u, seed=u + r))
        for u in (1, 2, 4)
        for r in range(2)
    ]
    write_experiment(root, runs, name="sweep")
    return load_experiment(root / "sweep")


def _y_at(line: object, x: float) -> float:
    xs, ys = line.get_xdata(), line.get_ydata()  # type: ignore[attr-defined]
    return float(ys[np.searchsorted(xs, x, side="right") - 1])


def test_latency_percentiles_on_a_log_percentile_axis() -> None:
    rng = np.random.default_rng(0)
    hists = {
        "fast": histogram_of((rng.exponential(2000, 20_000) + 1).astype(int)),
        "slow": histogram_of((rng.exponential(8000, 5_000) + 1).astype(int)),
    }
    ax = plots.latency_percentiles(hists)
    assert isinstance(ax, Axes)
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:4] == ["50%", "90%", "99%", "99.9%"]
    assert "99.99%" in labels  # 20,000 requests reach the 1 - 1/n percentile
    fast, slow = ax.get_lines()
    assert fast.get_label().startswith("fast (n=20,000)")
    for line, hist in ((fast, hists["fast"]), (slow, hists["slow"])):
        for q, x in ((50, 2.0), (99, 100.0)):
            assert _y_at(line, x) == pytest.approx(hist.get_value_at_percentile(q) / 1000, rel=0.02)
    assert float(np.max(slow.get_xdata())) == pytest.approx(5000, rel=0.01)  # stops at its data


def test_latency_cdf_of_histograms_and_raw_latencies(sweep: Experiment) -> None:
    fig, ax = plt.subplots()
    out = plots.latency_cdf(sweep.runs[:2], ax=ax)
    assert out is ax and len(ax.get_lines()) == 2
    for line in ax.get_lines():
        assert line.get_ydata()[-1] == pytest.approx(1.0)
        assert np.all(np.diff(line.get_ydata()) >= 0)
    ax2 = plots.latency_cdf({"raw": [1.0, 2.0, 3.0, 4.0]}, logx=False)
    (line,) = ax2.get_lines()
    assert list(line.get_ydata()) == [0.25, 0.5, 0.75, 1.0]


def test_throughput_and_latency_over_time(sweep: Experiment, tmp_path: Path) -> None:
    run = sweep.runs[0]
    ps = per_second(run)
    ax = plots.throughput_over_time({"r": ps})
    (line,) = ax.get_lines()
    assert list(line.get_ydata())[:-1] == list(ps["throughput_rps"])
    assert line.get_xdata()[-1] == ps["t"].iloc[-1] + 1.0
    ax = plots.latency_over_time(sweep.runs[:2], columns=("p50_ms", "p99_ms"))
    assert len(ax.get_lines()) == 4
    assert ax.get_lines()[1].get_linestyle() == "--"
    # faults in events.parquet show as marked vertical lines
    req = make_requests(rate=50, duration_s=4, seed=1)
    truth = write_run(tmp_path / "r", req)
    events = pd.read_parquet(truth.path / "events.parquet")
    fault = pd.DataFrame(
        {"t": [req["start"].min() + 2.0], "kind": ["fault"], "name": ["stall"], "detail": ["{}"]}
    )
    pd.concat([events, fault]).to_parquet(truth.path / "events.parquet", index=False)
    ax = plots.throughput_over_time(load_run(truth.path))
    marks = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert len(marks) == 1 and marks[0].get_xdata()[0] == pytest.approx(2.0)
    assert any(t.get_text() == "stall" for t in ax.texts)


def test_compare_runs_draws_merged_percentiles(sweep: Experiment) -> None:
    fig = plots.compare_runs(sweep, "users")
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    p99_ax = fig.axes[1]
    (line,) = p99_ax.get_lines()
    expected = group_percentiles(sweep, by="users")["p99_ms"].to_numpy()
    assert list(line.get_xdata()) == [1.0, 2.0, 4.0]
    assert line.get_ydata() == pytest.approx(expected)
    tput = fig.axes[2].get_lines()[0]
    means = sweep.table.groupby("load.users")["throughput_rps"].mean().to_numpy()
    assert tput.get_ydata() == pytest.approx(means)
    # from a bare table, latency gets dots only: there is nothing honest to draw a line through
    fig2 = plots.compare_runs(sweep.table, "load.users", metrics=("p99_ms",))
    assert fig2.axes[0].get_lines() == []
    with pytest.raises(Exception, match="no column 'nope'"):
        plots.compare_runs(sweep.table, "nope")


def test_usl_plot_marks_the_peak() -> None:
    n = np.array([1, 2, 4, 8, 16, 32, 48], dtype=float)
    x = usl_throughput(n, 100.0, 0.03, 0.001)
    fit = fit_usl(n, x)
    ax = plots.usl_plot(fit, n, x)
    assert any(t.get_text().startswith("N*=31") for t in ax.texts)
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert any(lbl.startswith("USL fit") for lbl in labels)
    assert "linear λN" in labels


def test_warm_up_end_is_marked(tmp_path: Path) -> None:
    req = make_requests(rate=50, duration_s=4, seed=2)
    run = load_run(write_run(tmp_path / "r", req, startup_s=1.0, warmup_s=2.0).path)
    ax = plots.latency_over_time(run)
    (mark,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    # time zero is the first request, and the warm-up counts from it
    assert mark.get_xdata()[0] == pytest.approx(2.0)
    assert [t.get_text() for t in ax.texts] == ["warm-up end"]


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    """A categorical sweep (executor kind) with three repeats of each kind."""
    root = tmp_path_factory.mktemp("results")
    runs = [
        (
            {"service.executor.kind": kind},
            make_requests(rate=rate + 20 * r, duration_s=3, mean_ms=mean, seed=10 * r + len(kind)),
        )
        for kind, rate, mean in (("direct", 100, 8.0), ("batched", 300, 3.0))
        for r in range(3)
    ]
    write_experiment(root, runs, name="kinds")
    return load_experiment(root / "kinds")


def test_categorical_sweep_is_bars_with_the_repeats_spread(kinds: Experiment) -> None:
    fig = plots.compare_runs(kinds, "kind", metrics=("p99_ms", "throughput_rps", "error_rate"))
    p99, tput, errors = fig.axes
    for ax in fig.axes:
        assert ax.get_lines() == []  # no line joins two categories
        assert [t.get_text() for t in ax.get_xticklabels()] == ["direct", "batched"]
        assert ax.get_xlabel() == "executor"
    assert p99.get_ylabel() == "p99 latency (ms)" and p99.get_title() == "p99 latency"
    assert tput.get_ylabel() == "throughput (requests/s)"
    assert errors.get_ylabel() == "errors (% of requests)"

    def bars(ax: Axes) -> list[float]:
        """Bar heights in the order of the x axis."""
        at = {round(b.get_x() + b.get_width() / 2): b.get_height() for b in ax.patches}
        return [at[0], at[1]]

    merged = group_percentiles(kinds, by="kind").set_index("service.executor.kind")["p99_ms"]
    assert bars(p99) == pytest.approx([merged["direct"], merged["batched"]])
    table = kinds.table
    (spread,) = tput.collections[1:2]  # dots, then the repeats' range
    segments = spread.get_segments()
    for x, kind in ((0.0, "direct"), (1.0, "batched")):
        values = table.loc[table["service.executor.kind"] == kind, "throughput_rps"]
        (seg,) = [s for s in segments if s[0][0] == pytest.approx(x)]
        assert sorted([seg[0][1], seg[1][1]]) == pytest.approx([values.min(), values.max()])
    means = table.groupby("service.executor.kind")["throughput_rps"].mean()
    assert bars(tput) == pytest.approx([means["direct"], means["batched"]])


def test_label_of_says_what_and_its_unit() -> None:
    assert plots.label_of("p999_ms") == "p99.9 latency (ms)"
    assert plots.label_of("load.users") == "concurrent users"
    assert plots.label_of("service.cache.some_delay_ms") == "some delay (ms)"
    assert plots.label_of("scenario.window_s") == "window (s)"
    assert plots.label_of("scenario.pattern") == "pattern"


def test_run_timeline_lines_up_faults_and_resources(tmp_path: Path) -> None:
    import json

    req = make_requests(rate=80, duration_s=5, seed=4)
    truth = write_run(tmp_path / "r", req)
    t0 = float(req["intended_start"].min())
    rows = []
    for k in range(7):
        t = t0 - 1 + k
        rows += [
            (t, "service", "process_cpu_seconds_total", "", 0.25 * k),
            (t, "worker", "process_cpu_seconds_total", "worker=tcp://h:1", 0.5 * k),
            (t, "scheduler", "dask_scheduler_tasks", "state=processing", 1.0),
            (t, "scheduler", "dask_scheduler_prefix_state_totals_total", "state=memory", 70.0 * k),
        ]
    metrics = pd.DataFrame(rows, columns=["t", "source", "metric", "labels", "value"])
    old = pd.read_parquet(truth.path / "metrics.parquet")  # keeps scalelab_in_flight
    pd.concat([old, metrics]).to_parquet(truth.path / "metrics.parquet", index=False)
    events = pd.read_parquet(truth.path / "events.parquet")
    stall = {"t": t0 + 2.0, "kind": "fault", "name": "stall", "detail": json.dumps({"seconds": 1})}
    pd.concat([events, pd.DataFrame([stall])]).to_parquet(
        truth.path / "events.parquet", index=False
    )
    fig = plots.run_timeline(load_run(truth.path), Figure(figsize=(9, 10)))
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == [
        "requests/s",
        "latency (ms)",
        "CPU (% of one core)",
        "in flight",
        "Dask tasks per second",
    ]
    cpu = fig.axes[2]
    by_label = {line.get_label(): line.get_ydata() for line in cpu.get_lines()}
    assert by_label["worker :1"] == pytest.approx(50.0)
    assert by_label["service"] == pytest.approx(25.0)
    for ax in fig.axes:  # the stall is shaded on every panel, from 2 s to 3 s
        (band,) = [p for p in ax.patches if p.get_facecolor()[0] > 0.8]
        span = (band.get_x(), band.get_x() + band.get_width())
        assert span == pytest.approx((2.0, 3.0))
    assert any(t.get_text() == "stall 1 s" for t in fig.axes[0].texts)
    flight = [line.get_label() for line in fig.axes[3].get_lines()]
    assert "requests in the service" in flight
    little = [c.get_label() for c in fig.axes[3].collections]
    assert any(str(label).startswith("Little's law λW") for label in little)
