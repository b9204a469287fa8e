"""The failure specs as a user runs them: ``scalelab run scenarios/failure_*.toml``.

By default one short run of the worker-kill spec without retries: its fault is
recorded with its end, the steady state is judged phase by phase, the run's exit
status fails the hypothesis and names the phase, and the report shows it. With
``SCALELAB_LONG_TESTS=1`` every failure spec runs in full.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from .conftest import LONG

pytestmark = pytest.mark.integration

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def run(spec: str, out: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable,
        "-m",
        "scalelab",
        "run",
        str(SCENARIOS / spec),
        "--out",
        str(out),
        "--quiet",
        *(a for o in overrides for a in ("--set", o)),
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


@pytest.mark.serial  # the kill must catch requests in flight on its worker: run alone
def test_worker_kill_without_retries_fails_its_hypothesis_during_the_kill(tmp_path: Path) -> None:
    done = run(
        "failure_worker_kill.toml",
        tmp_path,
        "duration_s=10",
        "warmup_s=1",
        "sweep.service.retry.max_attempts=[1]",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the steady state did not hold in phase during:0: error_rate" in done.stderr
    (run_dir,) = (tmp_path / "failure_worker_kill" / "latest").glob("000-*")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["slo_pass"] is False
    assert summary["slo_failed_phase"] == "during:0"
    phases = {p["phase"]: p for p in summary["slo_phases"]}
    assert set(phases) == {"before", "during:0", "after:0"}
    assert phases["before"]["pass"] and phases["after:0"]["pass"]
    assert phases["during:0"]["errors"] >= 1 and "error_rate" in phases["during:0"]["failed"]
    (kill,) = summary["faults"]
    assert kill["kind"] == "worker_kill" and kill["time_to_detect_s"] is not None
    assert kill["time_to_recover_s"] is not None
    assert summary["retry_amplification"] == 1.0  # no retries: one try per request
    events = pd.read_parquet(run_dir / "events.parquet")
    row = events[(events["kind"] == "fault") & (events["name"] == "worker_kill")].iloc[0]
    assert row["until"] == row["t"]  # a kill is over as it happens
    detail = json.loads(row["detail"])
    assert detail["ok"] and detail["service"]["restart"] is True
    report = (tmp_path / "failure_worker_kill" / "latest" / "report.html").read_text()
    assert "<h2>Steady state" in report and "<td>during:0</td>" in report


@pytest.mark.skipif(not LONG, reason="long form: set SCALELAB_LONG_TESTS=1")
@pytest.mark.parametrize(
    "spec",
    sorted(p.name for p in SCENARIOS.glob("failure_*.toml")),
)
def test_every_failure_spec_runs_in_full(spec: str, tmp_path: Path) -> None:
    done = run(spec, tmp_path)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "failed:" not in done.stderr, done.stderr  # every run measured (an SLO may fail)
