"""The partition-count sweep end to end, in its short form: real service with the orders
loaded, real Locust running scenarios/data.py, and the report's partitioning section."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from scalelab.analysis import load_experiment
from scalelab.analysis.partitioning import (
    overhead_knee,
    partition_load,
    partitions_touched,
    sweep_table,
)
from scalelab.experiment.runner import run_experiment
from scalelab.partition_plots import report_section
from scalelab.report import write_report

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_the_sweep_short_form_records_partitions_and_marks_the_knee(
    tmp_path: Path, no_child_leaks: None
) -> None:
    result = run_experiment(
        ROOT / "scenarios" / "partitioning_sweep.toml",
        overrides=[
            "duration_s=3",
            "warmup_s=0",
            "cooldown_s=0",
            "load.users=8",
            "service.cluster.workers=1",
            "service.router.dataset.rows=5000",
            "service.router.dataset.customers=500",
            f"service.router.dataset.path={str(tmp_path / 'orders')!r}",
            "sweep.service.router.partitions=[1, 4]",
        ],
        out=tmp_path / "results",
        progress=False,
        report=False,
    )
    assert result.ok, [(r.run_id, r.error) for r in result.runs]
    exp = load_experiment(result.path)
    for run, partitions in zip(exp.runs, (1, 4), strict=True):
        requests = run.requests
        data = requests.loc[requests["name"].str.startswith("/data/")]
        assert len(data) > 0 and data["ok"].all()
        assert (data["partition"] != "").all() and data["rows"].notna().all()
        touched = partitions_touched(run)
        assert touched.loc["/data/lookup", "max_partitions"] == 1
        if "/data/groupby" in touched.index:
            assert touched.loc["/data/groupby", "mean_partitions"] == partitions
            assert touched.loc["/data/groupby", "mean_rows"] == 5000
        load = partition_load(run)
        assert list(load.index) == list(range(partitions))
        assert load["requests"].sum() > 0 and load["share"].sum() == pytest.approx(1.0)
    table = sweep_table(exp)
    assert table["service.router.partitions"].tolist() == [1, 4]
    assert (table["throughput_rps"] > 0).all()
    knee = overhead_knee(table)
    assert knee == table.loc[table["throughput_rps"].idxmax(), "service.router.partitions"]
    section = report_section(exp)
    assert f"<b>{knee} partitions</b>" in section and "<img" in section
    assert isinstance(table, pd.DataFrame)
    report = Path(write_report(result.path)).read_text()  # what `scalelab run` writes
    assert "<h2>Partitioning</h2>" in report and f"<b>{knee} partitions</b>" in report
