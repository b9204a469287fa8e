"""Fault schedules and steady-state hypotheses: validation, timing, verdicts, and a real run."""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalelab.errors import SpecError
from scalelab.experiment.events import EventLog
from scalelab.experiment.faults import FaultRunner, nested, plan, requests_seen
from scalelab.experiment.runner import run_experiment
from scalelab.experiment.spec import FaultSpec, SloSpec, load_spec, parse_spec
from scalelab.experiment.summary import compute_summary, slo_verdicts
from scalelab.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
BASELINE = str(ROOT / "scenarios" / "baseline.py")


def _spec(**extra: Any) -> dict[str, Any]:
    return {"name": "f", "locustfile": BASELINE, "duration_s": 10, **extra}


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"faults": [{"at_s": 1}]}, r"faults.0: .*exactly one action"),
        ({"faults": [{"at_s": 1, "stall": 1, "set": {"faults.error_rate": 0.1}}]}, "exactly one"),
        ({"faults": [{"at_s": 1, "stall": 0}]}, r"faults.0.stall: .*greater than 0"),
        ({"faults": [{"at_s": 1, "stall": 301}]}, r"faults.0.stall: .*less than or equal to 300"),
        ({"faults": [{"at_s": 1, "stall": 1, "until_s": 3}]}, "until_s reverts a `set`"),
        (
            {"faults": [{"at_s": 3, "set": {"faults.error_rate": 0.1}, "until_s": 2}]},
            r"until_s \(2\) must be later than at_s \(3\)",
        ),
        (
            {"faults": [{"at_s": 1, "set": {"faults.eror_rate": 0.1}}]},
            r"set.faults.eror_rate is not a service field",
        ),
        (
            {"faults": [{"at_s": 1, "set": {"cluster.workers": 4}}]},
            r"set.cluster.workers: the cluster cannot change",
        ),
        (
            {"faults": [{"at_s": 1, "set": {"faults.error_rate": 2}}]},
            r"faults.0.set.faults.error_rate: .*less than or equal to 1",
        ),
        ({"faults": [{"at_s": 1, "set": {}}]}, "set is empty"),
        ({"faults": [{"at_s": 10, "stall": 1}]}, r"faults.0.at_s = 10 is not within the load"),
        (
            {"faults": [{"at_s": 1, "set": {"faults.error_rate": 0.1}, "until_s": 11}]},
            r"faults.0.until_s = 11 is after the load ends",
        ),
        ({"faults": [{"at_s": 1, "stall": 1, "when": 2}]}, r"faults.0.when: unknown key"),
        ({"slo": {"recovery_s": 1}}, r"slo: .*sets no limit"),
        ({"slo": {"p98_ms": 1}}, r"slo.p98_ms: unknown key"),
        ({"slo": {"error_rate": 1.5}}, r"slo.error_rate: .*less than or equal to 1"),
        (
            {"faults": [{"at_s": 0, "stall": 1}], "slo": {"p99_ms": 100}},
            r"faults.0.at_s = 0 leaves no measured time before the first fault",
        ),
        (
            {"faults": [{"at_s": 7, "stall": 1}], "slo": {"p99_ms": 100, "recovery_s": 2}},
            r"slo.recovery_s = 2: the faults end at 8 s",
        ),
    ],
)
def test_bad_faults_and_slos_are_named(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(_spec(**extra))


def test_faults_and_slo_round_trip_through_toml(tmp_path: Path) -> None:
    (tmp_path / "lf.py").write_text("# a locustfile\n")
    path = tmp_path / "spec.toml"
    path.write_text(
        """
name = "f"
locustfile = "lf.py"
duration_s = 10

[[faults]]
at_s = 2
stall = 0.5

[[faults]]
at_s = 4
set = { faults = { error_rate = 0.2 }, "faults.ingress_delay_ms" = 5 }
until_s = 5

[slo]
p99_ms = 200
min_throughput_rps = 10
"""
    )
    spec = load_spec(path)
    assert spec.faults[1].set == {"faults.error_rate": 0.2, "faults.ingress_delay_ms": 5}
    assert spec.faults[0].action == "stall" and spec.faults[0].end_s == 2.5
    assert spec.faults[1].end_s == 5
    assert spec.slo is not None and spec.slo.limits() == {"p99_ms": 200, "min_throughput_rps": 10}
    again = parse_spec(tomllib.loads(spec.to_toml()))
    assert again == spec
    assert parse_spec(_spec()).slo is None and "slo" not in parse_spec(_spec()).to_dict()


def test_the_example_stall_spec_is_valid() -> None:
    spec = load_spec(ROOT / "scenarios" / "stall.toml")
    assert spec.load.mode == "open" and spec.faults[0].stall == 1.0
    assert spec.faults[0].at_s == 5.0 and spec.slo is not None


# --- the schedule ---------------------------------------------------------------------------


def test_plan_orders_actions_and_reverts_first_at_equal_times() -> None:
    faults = [
        FaultSpec(at_s=3, set={"faults.error_rate": 0.5}, until_s=4),
        FaultSpec(at_s=4, set={"faults.error_rate": 0.1}),
        FaultSpec(at_s=1, stall=0.5),
    ]
    got = [(a.time_s, a.index, a.name) for a in plan(faults)]
    assert got == [(1, 2, "stall"), (3, 0, "set"), (4, 0, "revert"), (4, 1, "set")]


def test_requests_seen_reads_answered_and_in_flight_requests() -> None:
    text = (
        "# HELP scalelab_requests_total ...\n"
        "# TYPE scalelab_requests_total counter\n"
        'scalelab_requests_total{endpoint="/ping",status="200"} 7.0\n'
        'scalelab_requests_total{endpoint="/task/io",status="500"} 2.0 1700000000000\n'
        'scalelab_requests_total{endpoint="/task/key/a b\\"c",status="200"} 1.0\n'
        'scalelab_requests_created{endpoint="/ping",status="200"} 1.7e9\n'
        "# TYPE scalelab_in_flight gauge\n"
        "scalelab_in_flight 3.0\n"
        "# TYPE scalelab_in_flight_limit gauge\n"
        "scalelab_in_flight_limit 64.0\n"
        "scalelab_rejected_total 9.0\n"
    )
    # a timestamp is no value, and a metric sharing a prefix is another metric
    assert requests_seen(text) == 13.0
    assert requests_seen("") == 0.0


def test_nested_builds_the_admin_body() -> None:
    assert nested({"faults.error_rate": 0.2, "faults.ingress_delay_ms": 3, "x": 1}) == {
        "faults": {"error_rate": 0.2, "ingress_delay_ms": 3},
        "x": 1,
    }


def test_a_schedule_that_never_started_is_a_problem() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: no request is ever seen
    events = EventLog()
    runner = FaultRunner(url, [FaultSpec(at_s=0.1, stall=1)], events, poll_s=0.01).start()
    time.sleep(0.2)
    runner.stop()
    assert runner.t0 is None and runner.window() is None
    assert runner.problems() == [
        "faults.0 (stall 1 s at 0.1 s): never fired: no request reached the service"
    ]
    report = runner.report()
    assert report["actions"] == [] and report["not_fired"][0]["name"] == "stall"
    assert events.names() == []


def test_events_are_written_in_time_order(tmp_path: Path) -> None:
    events = EventLog()
    events.phase("load_start")
    events.fault("stall", at=events.time_of("load_start") - 1.0, seconds=1)  # type: ignore[operator]
    events.write(tmp_path / "events.parquet")
    frame = pd.read_parquet(tmp_path / "events.parquet")
    assert list(frame["name"]) == ["stall", "load_start"]
    assert list(frame["kind"]) == ["fault", "phase"]
    assert json.loads(frame["detail"][0]) == {"seconds": 1}


# --- verdicts ---------------------------------------------------------------------------------


def _records(n: int = 1000, rate: float = 100.0, t0: float = 1000.0) -> dict[str, list[Any]]:
    """n requests at ``rate``: 5 ms each, except 900 ms and failing from t0+4 s to t0+5 s."""
    intended = [t0 + i / rate for i in range(n)]
    bad = [4.0 <= t - t0 < 5.0 for t in intended]
    latency = [900_000 if b else 5_000 for b in bad]
    return {
        "intended_start": intended,
        "start": intended,
        "latency_us": latency,
        "latency_intended_us": latency,
        "ok": [not b for b in bad],
        "method": ["GET"] * n,
    }


def test_slo_is_judged_before_and_after_the_faults() -> None:
    records = _records()
    slo = SloSpec(p99_ms=50, error_rate=0.01, min_throughput_rps=90, recovery_s=1.0)
    verdicts = slo_verdicts(records, slo, fault_window=(1004.0, 1005.0))
    p99 = verdicts["p99_ms"]
    assert p99["limit"] == 50 and p99["checked"] == ["before", "after"] and p99["pass"]
    assert p99["before"] == pytest.approx(5.0, rel=1e-3) and p99["after"] == pytest.approx(
        5.0, rel=1e-3
    )
    assert p99["overall"] == pytest.approx(900.0, rel=1e-3)
    assert verdicts["error_rate"]["before"] == 0 and verdicts["error_rate"]["after"] == 0
    assert verdicts["error_rate"]["overall"] == pytest.approx(0.1)
    assert verdicts["min_throughput_rps"]["before"] == pytest.approx(100.0)
    assert verdicts["min_throughput_rps"]["pass"]

    # Without faults the whole run is judged, and the slow second fails it.
    overall = slo_verdicts(records, slo)
    assert overall["p99_ms"]["checked"] == ["overall"] and not overall["p99_ms"]["pass"]
    assert not overall["error_rate"]["pass"] and overall["min_throughput_rps"]["pass"]

    # Too little recovery: the 'after' window still holds the faulty second.
    early = slo_verdicts(records, SloSpec(p99_ms=50, recovery_s=0), fault_window=(1004.0, 1003.5))
    assert not early["p99_ms"]["pass"] and early["p99_ms"]["after"] == pytest.approx(900, rel=1e-3)


def test_an_empty_window_fails_and_throughput_is_a_lower_bound() -> None:
    records = _records(n=300)  # 3 s of requests, no faulty second
    slo = SloSpec(p99_ms=50, min_throughput_rps=150, recovery_s=10)
    verdicts = slo_verdicts(records, slo, fault_window=(1001.0, 1001.5))
    assert verdicts["p99_ms"]["after"] is None and not verdicts["p99_ms"]["pass"]
    assert verdicts["min_throughput_rps"]["before"] == pytest.approx(100.0)
    assert not verdicts["min_throughput_rps"]["pass"]


def test_summary_json_carries_the_verdicts(tmp_path: Path) -> None:
    records = _records()
    records["method"][0] = "DROPPED"  # a dropped row: counted apart, never a request
    table = pa.table({k: v for k, v in records.items()})
    pq.write_table(table, tmp_path / "requests.parquet")
    summary = compute_summary(
        tmp_path, slo=SloSpec(p99_ms=50, recovery_s=0.5), fault_window=(1004.0, 1005.0)
    )
    assert summary["slo_pass"] is True and summary["slo"]["p99_ms"]["pass"]
    assert summary["requests"] == 999 and summary["dropped"] == 1
    json.dumps(summary)  # valid JSON
    failing = compute_summary(tmp_path, slo=SloSpec(p99_ms=50), measure_from=1000.5)
    assert failing["slo_pass"] is False and failing["requests"] == 950


# --- a real run -------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.serial  # fault times checked to tens of ms: run alone
def test_a_run_fires_its_schedule_on_time_and_judges_its_slo(
    tmp_path: Path, no_child_leaks: None
) -> None:
    """Errors switched on for 1 s then reverted, and a stall: seen where and when they should be."""
    spec = parse_spec(
        _spec(
            duration_s=8,
            seed=3,
            load={"mode": "open", "rate": 100, "arrival": "constant"},
            scenario={"endpoint": "ping"},
            service={"cluster": {"workers": 1}},
            faults=[
                {"at_s": 1.5, "set": {"faults.error_rate": 1.0}, "until_s": 2.5},
                {"at_s": 3.5, "stall": 0.5},
            ],
            slo={"p99_ms": 300, "error_rate": 0.01, "recovery_s": 1.0},
        )
    )
    result = run_experiment(spec, out=tmp_path, progress=False, report=False)
    run = result.runs[0]
    assert run.status == "ok", run.error

    events = pd.read_parquet(run.path / "events.parquet")
    assert events["t"].is_monotonic_increasing
    faults = events[events["kind"] == "fault"]
    assert list(faults["name"]) == ["set", "revert", "stall"]
    t0 = float(events.loc[events["name"] == "fault_clock", "t"].iloc[0])
    for (_, row), at in zip(faults.iterrows(), (1.5, 2.5, 3.5), strict=True):
        assert row["t"] - t0 == pytest.approx(at, abs=0.05)
        detail = json.loads(row["detail"])
        assert detail["ok"] and detail["status"] == 200
    assert json.loads(faults["detail"].iloc[0])["previous"] == {"faults.error_rate": 0.0}

    record = json.loads((run.path / "run.json").read_text())
    actions = record["faults"]["actions"]
    assert [a["name"] for a in actions] == ["set", "revert", "stall"]
    assert record["faults"]["problems"] == [] and record["faults"]["not_fired"] == []
    for action in actions:  # timed from the first request, within a poll or two
        assert action["offset_from_first_request_s"] == pytest.approx(action["at_s"], abs=0.1)

    # Errors exactly while the error rate was 1, none before or after.
    requests = pd.read_parquet(run.path / "requests.parquet")
    t_set, t_revert, t_stall = (float(t) for t in faults["t"])
    failed = requests[~requests["ok"]]
    assert 80 <= len(failed) <= 110, len(failed)  # 100 requests/s for 1 s
    assert failed["start"].min() >= t_set - 0.01 and failed["start"].max() <= t_revert + 0.05
    assert (failed["status"] == 500).all()

    summary = json.loads((run.path / "summary.json").read_text())
    slo = summary["slo"]
    assert slo["error_rate"]["before"] == 0 and slo["error_rate"]["after"] == 0
    assert slo["error_rate"]["overall"] > 0.05  # the faults show in the whole run ...
    assert slo["p99_ms"]["overall"] is not None and summary["max_ms"] >= 400  # the stall
    assert slo["p99_ms"]["before"] < 300 and slo["p99_ms"]["after"] < 300
    assert summary["slo_pass"] is True  # ... and the service recovered from them
    assert result.table()["slo_pass"].tolist() == [True]
    after_stall = requests[requests["intended_start"] >= t_stall + 0.5 + 1.0]
    assert len(after_stall) > 50
