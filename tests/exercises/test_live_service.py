"""The live step for real: the reference executor plugged into the service under a Locust load."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.exercises.lab00 import SolutionDirectExecutor
from scalelab.exercises.live import LiveStep

SHORT = {"duration_s": 2.0, "load.users": 4, "load.spawn_rate": 4, "cooldown_s": 0.0}


@pytest.mark.integration
def test_reference_executor_serves_live_load(
    tmp_path: Path, no_child_leaks: None, capsys: pytest.CaptureFixture[str]
) -> None:
    step = LiveStep(field="service.executor.kind", overrides=SHORT)
    outcome = step.run(SolutionDirectExecutor, {"out": str(tmp_path)})
    assert outcome.ok, outcome.message
    [row] = outcome.rows
    assert row["component"] == "yours"
    assert row["requests"] > 0 and row["throughput_rps"] > 0
    assert "throughput_rps" in capsys.readouterr().out


@pytest.mark.integration
def test_a_class_that_does_not_fit_fails_with_the_service_message(
    tmp_path: Path, no_child_leaks: None
) -> None:
    step = LiveStep(field="service.executor.kind", overrides=SHORT)
    outcome = step.run(LiveStep, {"out": str(tmp_path)})  # a class with no executor methods
    assert not outcome.ok
    assert "does not implement" in outcome.message  # the service's own check
