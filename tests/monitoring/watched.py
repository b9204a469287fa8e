"""One real run watched by Prometheus and Dask, for the monitoring tests (see conftest.py).

A short run of the quickstart's service (direct executor) with a stall,
``[monitoring] prometheus = true`` and ``dask_report = true``: the tests read
its run directory, its report, and its Prometheus data opened again after the
run. (The quickstart's own two-run report is checked in Chromium by
tests/experiment/test_run_integration.py.)
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scalelab.experiment.runner import ExperimentResult, run_experiment
from scalelab.monitoring.prometheus import prometheus_binary

ROOT = Path(__file__).resolve().parents[2]
USERS = 8

SPEC = f"""
name = "monitored"
description = "A stall under load, watched by Prometheus and Dask"
locustfile = "{ROOT / "scenarios" / "baseline.py"}"
duration_s = 3
cooldown_s = 0.2
seed = 1

[load]
users = {USERS}
spawn_rate = {USERS}

[scenario]
endpoint = "cpu"
units = 10

[service.cluster]
workers = 1

[service.executor]
kind = "direct"

[[faults]]
at_s = 1.0
stall = 0.5

[monitoring]
prometheus = true
dask_report = true
"""


def need_prometheus() -> None:
    """Skip, saying why, when the prometheus server cannot be had."""
    if prometheus_binary() is None:
        pytest.skip(
            "the prometheus server is not installed (apt-get install prometheus, "
            "or name it in $SCALELAB_PROMETHEUS); .ci/run installs it where it can"
        )


@dataclass
class Monitored:
    """The experiment, and what a watcher saw in run.json while its runs went on."""

    result: ExperimentResult
    out: Path
    seen_running: list[dict[str, Any]] = field(default_factory=list)
    printed: str = ""
    """What ``run_experiment`` printed (as ``scalelab run`` does) besides its progress bar."""


def _watch(out: Path, stop: threading.Event, seen: list[dict[str, Any]]) -> None:
    """Read every run.json while the experiment runs, keeping those that say 'running'."""
    while not stop.is_set():
        for path in out.glob("monitored/*/*/run.json"):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            live = record.get("status") == "running" and record.get("dashboard_link")
            if live and all(r["run_id"] != record["run_id"] for r in seen):
                seen.append(record)
        time.sleep(0.2)


def run_watched(root: Path) -> Monitored:
    """Run the spec under ``root``, reading run.json all the while."""
    spec = root / "monitored.toml"
    spec.write_text(SPEC)
    out = root / "results"
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(out, stop, seen), daemon=True)
    watcher.start()
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # the progress bar itself goes to stderr
            result = run_experiment(spec, out=out, progress=True)
    finally:
        stop.set()
        watcher.join(5)
    assert result.status == "ok", [(r.run_id, r.error) for r in result.runs]
    return Monitored(result, out, seen, printed.getvalue())
