"""The layer table from a run's metrics: every layer alike, counters that appear mid-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalelab.analysis import layer_table, load_run
from scalelab.experiment.scraper import write_metrics


def run_with(tmp_path: Path, rows: list[tuple[float, str, str, str, float]]) -> Path:
    run = tmp_path / "000-r0"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"run_id": "000-r0", "status": "ok"}))
    write_metrics(run / "metrics.parquet", rows)
    return run


def test_each_layer_gets_its_requests_answers_time_and_outcomes(tmp_path: Path) -> None:
    rows = []
    for t, n in ((100.0, 0), (101.0, 10), (102.0, 30)):
        rows += [
            (t, "service", "scalelab_layer_requests_total", "layer=admission", float(n)),
            (t, "service", "scalelab_layer_requests_total", "layer=cache", float(n)),
            (t, "service", "scalelab_layer_seconds_total", "layer=cache", n * 50e-6),
            (t, "service", "scalelab_layer_responses_total", "code=2xx,layer=cache", float(n)),
            (t, "scheduler", "scalelab_layer_requests_total", "layer=cache", 999.0),
        ]
    # A labelled counter appears at its first increment: no hit before t = 101.
    rows += [
        (101.0, "service", "scalelab_layer_outcomes_total", "layer=cache,outcome=hit", 4.0),
        (102.0, "service", "scalelab_layer_outcomes_total", "layer=cache,outcome=hit", 20.0),
    ]
    run = load_run(run_with(tmp_path, rows))
    table = layer_table(run).set_index("layer")
    assert table.loc["cache", "requests"] == 30
    assert table.loc["cache", "outcome_hit"] == 20  # not 20 - 4: it started at 0
    assert table.loc["cache", "answers_2xx"] == 30
    assert table.loc["cache", "us_inside_per_request"] == pytest.approx(50.0)
    assert table.loc["admission", "requests"] == 30
    window = layer_table(run, window=(100.5, 102.0)).set_index("layer")
    assert window.loc["cache", "requests"] == 30 and window.loc["cache", "outcome_hit"] == 20
    later = layer_table(run, window=(101.0, 102.0)).set_index("layer")
    assert later.loc["cache", "requests"] == 20 and later.loc["cache", "outcome_hit"] == 16


def test_a_run_without_metrics_gives_an_empty_table(tmp_path: Path) -> None:
    assert layer_table(load_run(run_with(tmp_path, []))).empty
