"""Runner pieces that need no processes: import boundary, run tables, experiment dirs, CLI table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from scalelab.experiment.cli import summary_table
from scalelab.experiment.runner import (
    ExperimentResult,
    RunResult,
    _experiment_dir,
    runs_frame,
)


def test_the_orchestrator_never_imports_locust() -> None:
    code = (
        "import sys, scalelab, scalelab.experiment.runner, scalelab.experiment.cli; "
        "scalelab.run_experiment; "
        "print(sorted(m for m in ('locust', 'gevent') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _runs(tmp_path: Path) -> list[RunResult]:
    good = {"requests": 100, "errors": 2, "error_rate": 0.02, "throughput_rps": 50.0}
    good |= {"p50_ms": 1.5, "p99_ms": 9.25, "late": 3}
    return [
        RunResult("000-users=1-r0", tmp_path / "a", {"load.users": 1}, "ok", good),
        RunResult("001-users=2.5-r0", tmp_path / "b", {"load.users": 2.5}, "failed", {}, "boom"),
    ]


def test_runs_frame_has_params_figures_and_errors(tmp_path: Path) -> None:
    frame = runs_frame(_runs(tmp_path), ["load.users"])
    assert list(frame["run_id"]) == ["000-users=1-r0", "001-users=2.5-r0"]
    assert list(frame["load.users"]) == [1, 2.5]  # numeric stays numeric
    assert frame["requests"].dtype == "Int64" and pd.isna(frame["requests"][1])
    assert frame["p99_ms"][0] == 9.25 and pd.isna(frame["p99_ms"][1])
    assert list(frame["late"])[0] == 3
    assert list(frame["error"]) == ["", "boom"]
    mixed = runs_frame(
        [RunResult("x", tmp_path, {"k": 1}, "ok"), RunResult("y", tmp_path, {"k": "a"}, "ok")],
        ["k"],
    )
    assert list(mixed["k"]) == ["1", "a"]  # mixed types become text, so Parquet can hold them
    mixed.to_parquet(tmp_path / "runs.parquet")


def test_summary_table_lists_every_run(tmp_path: Path) -> None:
    result = ExperimentResult(
        tmp_path, "demo", _runs(tmp_path), "failed", sweep_keys=["load.users"]
    )
    text = summary_table(result)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["run", "params", "requests"]
    assert (
        "users=1" in lines[2] and "50.0" in lines[2] and "9.25" in lines[2] and "2.00" in lines[2]
    )
    assert lines[3].endswith("failed") and " - " in lines[3]


def test_experiment_dirs_are_stamped_and_latest_follows(tmp_path: Path) -> None:
    first = _experiment_dir(tmp_path, "demo")
    second = _experiment_dir(tmp_path, "demo")  # within the same second: still distinct
    assert first != second and first.parent == second.parent == tmp_path / "demo"
    assert len(first.name) == len("20260101-120000")
    assert (tmp_path / "demo" / "latest").resolve() == second.resolve()
    assert (tmp_path / "demo" / "latest").readlink() == Path(second.name)  # relative link
