"""The partitioning analysis against runs whose counters and requests are known exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalelab.analysis import load_run
from scalelab.analysis.partitioning import (
    expected_moved_share,
    expected_partition_load,
    imbalance,
    keys_moved,
    overhead_knee,
    partition_load,
    partitions_touched,
    worker_load,
)
from scalelab.data.partitioners import ConsistentHash, ModuloHash, moved_fraction
from scalelab.loadgen.keys import zipf_weights
from scalelab.partition_plots import partition_load_bars, report_section, touched_histogram
from tests.rundirs import T0, make_requests, write_run


def _counter(metric: str, labels: str, values: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "t": T0 + np.arange(len(values), dtype=float),
            "source": "service",
            "metric": metric,
            "labels": labels,
            "value": values,
        }
    )


@pytest.fixture
def run(tmp_path: Path):
    requests = make_requests(rate=50, duration_s=4, seed=1)
    n = len(requests)
    requests["name"] = ["/data/lookup" if i % 4 else "/data/range" for i in range(n)]
    requests["partition"] = ["2" if i % 4 else "0,1,2,3" for i in range(n)]
    requests["rows"] = [5 if i % 4 else 1000 for i in range(n)]
    write_run(tmp_path / "run", requests)
    frames = [
        # partition 2 takes 60 tasks over the run, the others 20; the window [T0+1, T0+3]
        # sees 40 and 10 of them
        _counter("scalelab_partition_requests_total", "partition=2", [0, 10, 30, 50, 60]),
        *(
            _counter("scalelab_partition_requests_total", f"partition={p}", [0, 5, 10, 15, 20])
            for p in (0, 1, 3)
        ),
        _counter("scalelab_partition_bytes_moved_total", "partition=1", [0, 0, 0, 800, 800]),
        _counter("scalelab_worker_requests_total", "worker=tcp://a:1", [0, 20, 40, 60, 80]),
        _counter("scalelab_worker_requests_total", "worker=tcp://b:2", [0, 0, 20, 40, 40]),
        # one repartitioning between the 2nd and 3rd scrapes: 300 keys looked at, 60 moved
        _counter("scalelab_router_keys_total", "", [100, 100, 400, 400, 400]),
        _counter("scalelab_router_keys_moved_total", "", [0, 0, 60, 60, 60]),
        _counter("scalelab_router_rows_moved_total", "", [0, 0, 900, 900, 900]),
        _counter("scalelab_router_bytes_moved_total", "cause=repartition", [0, 0, 5e4, 5e4, 5e4]),
        _counter("scalelab_router_bytes_moved_total", "cause=query", [0, 7, 7, 7, 7]),
    ]
    pd.concat(frames).to_parquet(tmp_path / "run" / "metrics.parquet", index=False)
    return load_run(tmp_path / "run")


def test_load_per_partition_and_worker_and_their_imbalance(run) -> None:
    load = partition_load(run)
    assert load["requests"].to_dict() == {0: 20.0, 1: 20.0, 2: 60.0, 3: 20.0}
    assert load.loc[1, "bytes_moved"] == 800
    assert load["share"].sum() == pytest.approx(1.0)
    assert imbalance(load["requests"]) == pytest.approx(60 / 30)
    window = partition_load(run, window=(T0 + 1, T0 + 3))
    assert window["requests"].to_dict() == {0: 10.0, 1: 10.0, 2: 40.0, 3: 10.0}
    workers = worker_load(run)
    assert workers["requests"].to_dict() == {"tcp://a:1": 80.0, "tcp://b:2": 40.0}
    assert imbalance([0, 0]) != imbalance([0, 0])  # NaN: no load at all


def test_partitions_touched_per_request_name(run) -> None:
    table = partitions_touched(run)
    assert table.loc["/data/lookup", "max_partitions"] == 1
    assert table.loc["/data/range", "mean_partitions"] == 4
    assert table.loc["/data/range", "mean_rows"] == 1000
    assert table["requests"].sum() == len(run.requests)


def test_keys_moved_finds_each_repartitioning(run) -> None:
    moves = keys_moved(run)
    first, second = moves.to_dict("records")
    assert first["keys"] == 100 and first["keys_moved"] == 0  # the initial load
    assert second["t"] == T0 + 2
    assert (second["keys"], second["keys_moved"], second["rows_moved"]) == (300, 60, 900)
    assert second["share"] == pytest.approx(0.2) and second["bytes_moved"] == 5e4


def test_theory_of_keys_moved_and_of_load_matches_the_partitioners() -> None:
    keys = np.arange(60_000)
    for n in (3, 6):
        assert expected_moved_share("hash", n) == pytest.approx(
            moved_fraction(ModuloHash(n), ModuloHash(n + 1), keys), abs=0.01
        )
        assert expected_moved_share("consistent", n) == pytest.approx(
            moved_fraction(ConsistentHash(n), ConsistentHash(n + 1), keys), rel=0.12
        )
    popularity = zipf_weights(1000, 1.0)
    shares = expected_partition_load(popularity, ModuloHash(8).partition_many(np.arange(1000)))
    assert shares.sum() == pytest.approx(1.0)
    assert shares.max() >= popularity[0]  # the first key's partition holds at least its share
    with pytest.raises(ValueError, match="kind"):
        expected_moved_share("ring", 3)


def test_the_knee_is_the_partition_count_with_the_most_throughput() -> None:
    table = pd.DataFrame({"partitions": [1, 2, 4, 8], "throughput_rps": [50, 90, 80, 40.0]})
    assert overhead_knee(table) == 2
    assert overhead_knee(table.iloc[:0]) is None


def test_plots_and_the_report_section_draw_the_run(run) -> None:
    from matplotlib.figure import Figure

    left, right = Figure().subplots(1, 2)
    assert "max/mean = 2.00" in partition_load_bars(run, ax=left).get_title()
    assert touched_histogram(run, ax=right).get_xlabel() == "partitions touched by a query"
    section = report_section(run)
    assert "<h2>Partitioning</h2>" in section and "<img" in section
