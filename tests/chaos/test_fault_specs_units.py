"""Fault entries of a spec, the steady-state phases on synthetic requests, and the CLI's parsing."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalelab.chaos.cli import parse_params
from scalelab.errors import ConfigError, SpecError
from scalelab.experiment.events import EventLog
from scalelab.experiment.faults import plan
from scalelab.experiment.spec import SloSpec, parse_spec
from scalelab.experiment.steady_state import phases, steady_state

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def spec_with(*faults: dict, **extra: object) -> object:
    data = {"name": "t", "locustfile": "baseline.py", "duration_s": 20, "faults": list(faults)}
    data.update(extra)
    return parse_spec(data, SCENARIOS)


def test_fault_kinds_are_validated_with_their_parameters_named() -> None:
    spec = spec_with({"at_s": 3, "action": "worker_kill", "params": {"worker": 1}})
    (fault,) = spec.faults
    assert fault.kind == "worker_kill" and fault.params["restart"] is True
    assert fault.describe(0) == "faults.0 (worker_kill worker=1 restart=True at 3 s)"
    with pytest.raises(SpecError, match=r"faults.0.*delay_ms"):
        spec_with({"at_s": 3, "until_s": 5, "action": "task", "params": {"delay_ms": -5}})
    with pytest.raises(SpecError, match="lasts until it is ended: give until_s"):
        spec_with({"at_s": 3, "action": "worker_pause"})
    with pytest.raises(SpecError, match="unknown fault kind 'meteor'"):
        spec_with({"at_s": 3, "action": "meteor"})
    with pytest.raises(SpecError, match="params belong to a fault kind"):
        spec_with({"at_s": 3, "stall": 1, "params": {"worker": 0}})


def test_old_specs_read_back_the_same_and_ends_are_planned() -> None:
    spec = spec_with(
        {"at_s": 2, "stall": 1.0},
        {"at_s": 4, "set": {"faults.error_rate": 0.5}, "until_s": 5},
        {
            "at_s": 6,
            "until_s": 8,
            "action": "network",
            "params": {"link": "scheduler", "toxic": "down"},
        },
    )
    again = parse_spec(spec.to_dict(), SCENARIOS)
    assert again.faults == spec.faults
    assert [(a.time_s, a.name) for a in plan(spec.faults)] == [
        (2, "stall"),
        (4, "set"),
        (5, "revert"),
        (6, "network"),
        (8, "end"),
    ]


def test_events_carry_each_faults_end() -> None:
    events = EventLog()
    t = events.fault("worker_pause", at=10.0)
    events.fault("end", at=12.5, until=12.5)
    events.set_until(t, 12.5)
    events.add("phase", "load_stop", at=13.0)
    rows = {r[2]: r[4] for r in events._rows}
    assert rows == {"worker_pause": 12.5, "end": 12.5, "load_stop": None}


def write_requests(
    path: Path, starts: list[float], ok: list[bool], lat_ms: list[float], attempts: list[int]
) -> None:
    lat = [int(v * 1000) for v in lat_ms]
    pq.write_table(
        pa.table(
            {
                "intended_start": starts,
                "start": starts,
                "latency_us": lat,
                "latency_intended_us": lat,
                "ok": ok,
                "status": [200 if o else 500 for o in ok],
                "attempts": attempts,
                "method": ["GET"] * len(starts),
            }
        ),
        path / "requests.parquet",
    )


def test_phases_time_to_detect_and_recover_goodput_and_amplification(tmp_path: Path) -> None:
    # 10 requests a second for 10 s; a fault from t = 4 to 6 fails every request
    # started in [4, 7) (one second to recover), each tried twice.
    starts = [i / 10 for i in range(100)]
    bad = [4 <= s < 7 for s in starts]
    write_requests(
        tmp_path, starts, [not b for b in bad], [10.0] * 100, [2 if b else 1 for b in bad]
    )
    slo = SloSpec(error_rate=0.01, recovery_s=1.0, judge=["before", "during", "after"])
    spans = [{"index": 0, "kind": "task", "start": 4.0, "end": 6.0}]
    assert phases(spans, 1.0, 10.01) == [
        ("before", None, 4.0),
        ("during:0", 4.0, 6.0),
        ("after:0", 7.0, None),
    ]
    out = steady_state(tmp_path, None, slo, spans, None)
    rows = {r["phase"]: r for r in out["slo_phases"]}
    assert rows["before"]["requests"] == 40 and rows["before"]["pass"]
    assert rows["during:0"]["error_rate"] == 1.0 and not rows["during:0"]["pass"]
    assert rows["after:0"]["requests"] == 30 and rows["after:0"]["pass"]
    assert out["slo_failed_phase"] == "during:0" and out["slo_pass"] is False
    (fault,) = out["faults"]
    assert fault["time_to_detect_s"] == pytest.approx(1.0)  # the first second's answers broke it
    assert fault["time_to_recover_s"] == pytest.approx(1.0)  # good again from t = 7
    assert out["retry_amplification"] == pytest.approx(1.3)  # 30 of 100 tried twice
    assert out["goodput_rps"] == pytest.approx(70 / 9.91, rel=0.01)
    assert out["timeouts"] == 0


def test_cli_parameters_are_toml_values() -> None:
    assert parse_params(["worker=0", "restart=false", "workers=[0, 1]", "link=scheduler"]) == {
        "worker": 0,
        "restart": False,
        "workers": [0, 1],
        "link": "scheduler",
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_params(["worker"])
