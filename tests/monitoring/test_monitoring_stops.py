"""Prometheus and Dask's client end with the run, however it ends, and leave data to read."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
from experiment.leaks import cmdline, descendants, mentioning

from scalelab.experiment.runner import run_experiment
from scalelab.monitoring.prometheus import open_data
from scalelab.procs import Child, wait_until

from .watched import need_prometheus

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
SMALL = [
    "service.cluster.workers=1",
    "load.users=4",
    "load.spawn_rate=4",
    'sweep.service.executor.kind=["direct"]',
    "monitoring.prometheus=true",
]


def test_a_run_that_fails_stops_prometheus(tmp_path: Path, no_child_leaks: None) -> None:
    need_prometheus()
    out = tmp_path / "results"
    result = run_experiment(
        QUICKSTART,
        # the service cannot load this executor, so it exits while starting
        overrides=[
            *SMALL[:-2],
            'sweep.service.executor.kind=["no_such_module:Nothing"]',
            "monitoring.prometheus=true",
            "monitoring.dask_report=true",
        ],
        out=out,
        progress=False,
        report=False,
    )
    (run,) = result.runs
    assert run.status == "failed" and "service" in (run.error or "")
    record = json.loads((run.path / "run.json").read_text())
    prom = record["monitoring"]["prometheus"]
    assert prom["started"] < prom["stopped"] and prom["scraping"] is None
    assert record["monitoring"]["dask_report"] is None  # never started: no service to ask
    assert (run.path / "prometheus" / "data" / "wal").is_dir()
    assert mentioning(str(out)) == []


def test_ctrl_c_stops_prometheus_and_its_data_opens_again(tmp_path: Path) -> None:
    need_prometheus()
    out = tmp_path / "results"
    args = [sys.executable, "-m", "scalelab", "run", str(QUICKSTART), "--out", str(out)]
    for item in ["duration_s=30", *SMALL]:
        args += ["--set", item]
    args += ["--no-report", "--quiet"]
    child = Child(args, name="scalelab run", log_path=tmp_path / "run.log")
    try:
        # Interrupt once Prometheus has opened its data (the service is still starting).
        opened = wait_until(lambda: any(out.glob("*/*/*/prometheus/data/wal")), 90, 0.1)
        assert opened, child.log_tail()
        assert any("prometheus" in cmdline(p) for p in descendants(child.pid))
        os.kill(child.pid, signal.SIGINT)
        code = child.wait(60)
    finally:
        child.stop(5)
    assert code == 130, child.log_tail()
    assert mentioning(str(out)) == []  # no prometheus (nor anything else) left
    (run_dir,) = [p for p in (out / "quickstart" / "latest").resolve().iterdir() if p.is_dir()]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "interrupted"
    assert record["monitoring"]["prometheus"]["stopped"] is not None
    with open_data(run_dir) as server:  # closed cleanly: a new server opens the data
        assert server.query("up") == []  # interrupted before it was given targets
