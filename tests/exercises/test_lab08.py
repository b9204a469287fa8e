"""Lab 08's exercises on runs of known behaviour: references, blanks, wrong models, made-up runs.

Three systems, written from a known model: worker threads that are full (a queue
at the scheduler), an admission limit that sheds, and neither (a slow layer).
Each run has the lab's injected fault (500s for a share of the requests between
two ``set`` events), the service's and Dask's series a scrape a second, and the
JSON lines of its slowest requests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rundirs import T0, make_requests

from exercises.cases import Case, check_cases
from exercises.runs import lab_run
from scalelab.analysis import load_run
from scalelab.analysis.load import Run
from scalelab.exercises.instructor import ensure_hidden
from scalelab.exercises.params import Parameters
from scalelab.exercises.registry import get_lab

SYSTEMS = {"workers": (1, 1000, 0.0), "admission": (4, 2, 0.0), "none": (4, 1000, 150.0)}
ERROR_RATE = 0.3
FAULT = (T0 + 4.5, T0 + 9.5)
SCRAPES = T0 - 3.0 + np.arange(20, dtype=float)
SLOW, LATE = "p0u0-100", "p0u0-200"
"""The slowest request from its intended start (600 ms in the service, 300 on a worker), and
the slowest from its actual start."""

RULE = {"expr": 'sum(rate(scalelab_requests_total{status="500"}[2s])) > 0', "for": "0s"}


def params(system: str, error_rate: float = ERROR_RATE) -> Parameters:
    values = {"system": SYSTEMS[system], "error_rate": error_rate, "quantile": 0.9}
    return Parameters("lab08", values, seed=0, smoke=True)


def _requests(system: str) -> pd.DataFrame:
    """60 requests/s for 12 s; 30 % fail fast with 500 during the fault; 40 % are shed with
    503 throughout when the admission limit is the one that is full."""
    rng = np.random.default_rng(7)
    req = make_requests(rate=60.0, duration_s=12.0, poisson=False, latency="fixed", mean_ms=50)
    n = len(req)
    lat = np.round(rng.uniform(45, 120, n) * 1000).astype(np.int64)
    t = req["intended_start"].to_numpy()
    injected = (t >= FAULT[0]) & (t < FAULT[1]) & (rng.random(n) < ERROR_RATE)
    shed = (rng.random(n) < 0.4) & ~injected if system == "admission" else np.zeros(n, bool)
    status = np.where(injected, 500, np.where(shed, 503, 200))
    lat = np.where(status == 200, lat, 1000)
    lat = np.where((t >= FAULT[0]) & (t < FAULT[1]), 2 * lat, lat)  # slower while it is on
    req["latency_us"] = lat
    req["latency_intended_us"] = lat.copy()
    req["status"] = status.astype(np.int32)
    req["ok"] = status == 200
    req["error"] = pd.Series(np.where(status == 200, "", f"HTTPError({status})"), dtype="string")
    req["request_id"] = pd.Series([f"p0u0-{i}" for i in range(n)], dtype="string")
    # SLOW: meant to start 20 ms before it was sent, 1000 ms from its intended start.
    for rid, intended_ms, actual_ms in ((100, 1000, 980), (200, 995, 990)):
        req.loc[rid, ["status", "ok", "error"]] = [200, True, ""]
        req.loc[rid, "latency_intended_us"] = intended_ms * 1000
        req.loc[rid, "latency_us"] = actual_ms * 1000
        req.loc[rid, "start"] = req.loc[rid, "intended_start"] + (intended_ms - actual_ms) / 1e3
    return req


def _counter(times: np.ndarray, answered: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.sort(answered), times, side="right").astype(float)


def _metrics(system: str, req: pd.DataFrame) -> pd.DataFrame:
    """The service's, the scheduler's and two workers' series, each a little apart in time."""
    threads, limit, _ = SYSTEMS[system]
    k = np.arange(len(SCRAPES))
    rows: list[tuple[float, str, str, str, float]] = []
    answered = (req["start"] + req["latency_us"] / 1e6).to_numpy()
    service_t = SCRAPES
    for status in (200, 500, 503):
        mine = answered[req["status"].to_numpy() == status]
        for t, v in zip(service_t, _counter(service_t, mine), strict=True):
            rows.append(
                (t, "service", "scalelab_requests_total", f"endpoint=/task/io,status={status}", v)
            )
    injected = answered[req["status"].to_numpy() == 500]
    shed = answered[req["status"].to_numpy() == 503]
    in_flight = {"workers": 14.0, "admission": 1.5, "none": 12.0}[system]
    for t, a, b in zip(
        service_t, _counter(service_t, injected), _counter(service_t, shed), strict=True
    ):
        rows.append((t, "service", "scalelab_faults_injected_total", "kind=error", a))
        rows.append((t, "service", "scalelab_rejected_total", "", b))
        rows.append((t, "service", "scalelab_in_flight", "", in_flight))
    queued = 12.0 if system == "workers" else 0.0
    for t in SCRAPES + 0.01:
        rows.append((t, "scheduler", "dask_scheduler_tasks", "state=queued", queued))
    for w, offset in (("tcp://127.0.0.1:40001", 0.02), ("tcp://127.0.0.1:40002", 0.03)):
        for i, t in zip(k, SCRAPES + offset, strict=True):
            label = f"worker={w}"
            rows.append((t, "worker", "dask_worker_threads", label, float(threads)))
            if system == "workers":
                rows.append((t, "worker", "dask_worker_tasks", f"state=executing,{label}", 1.0))
                if i % 2:
                    rows.append((t, "worker", "dask_worker_tasks", f"state=ready,{label}", 1.0))
            elif i % 2 == 0:  # a task on a thread at every other scrape, none (no series) between
                rows.append((t, "worker", "dask_worker_tasks", f"state=executing,{label}", 1.0))
    return pd.DataFrame(rows, columns=["t", "source", "metric", "labels", "value"])


def _log(path: Path, req: pd.DataFrame) -> None:
    """The service's and the workers' lines of a few requests, SLOW and LATE among them."""
    lines = ["scalelab serve: listening on http://127.0.0.1:1"]
    parts = {SLOW: (900.0, 300.0), LATE: (950.0, 40.0)}
    for rid in [SLOW, LATE, "p0u0-5", "p0u0-6"]:
        service, worker = parts.get(rid, (60.0, 40.0))
        t = float(req.loc[req["request_id"] == rid, "start"].iloc[0])
        lines.append(json.dumps({"t": t + 0.5, "event": "task", "request_id": rid, "ms": worker}))
        lines.append(
            json.dumps(
                {"t": t + 0.6, "event": "request", "request_id": rid, "status": 200, "ms": service}
            )
        )
    (path / "service.log").write_text("\n".join(lines) + "\n")


def observability_run(path: Path, system: str, error_rate: float = ERROR_RATE) -> Run:
    threads, limit, gate = SYSTEMS[system]
    req = _requests(system)
    run = lab_run(
        path,
        "observability",
        req,
        settings={
            "service.cluster.threads_per_worker": threads,
            "service.admission.max_in_flight": limit,
            "service.layers.gate.ingress_delay_ms": gate,
            "faults": [{"at_s": 4.5, "set": {"faults.error_rate": error_rate}, "until_s": 9.5}],
        },
    )
    _metrics(system, req).to_parquet(run.path / "metrics.parquet", index=False)
    events = pd.read_parquet(run.path / "events.parquet")
    fault = pd.DataFrame(
        {
            "t": [FAULT[0], FAULT[1]],
            "kind": ["fault", "fault"],
            "name": ["set", "revert"],
            "detail": ["{}", "{}"],
            "until": [FAULT[1], FAULT[1]],
        }
    )
    pd.concat([events, fault], ignore_index=True).to_parquet(run.path / "events.parquet")
    _log(run.path, req)
    return load_run(run.path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    root = tmp_path_factory.mktemp("lab08")
    out = {name: observability_run(root / f"{name}-r0", name) for name in SYSTEMS}
    out["other_rate"] = observability_run(root / "rate-r0", "workers", error_rate=0.2)
    return out


def _use(workers: tuple[float, float], admission: tuple[float, float], name: str) -> Any:
    return {"workers": workers, "admission": admission, "saturated": name}


def _cases(r: dict[str, Run]) -> list[Case]:
    def q(
        exercise: str, role: str, name: str, answer: Any, expect: str, says: str = "", **kw: Any
    ) -> Case:
        system = kw.pop("system", "workers")
        context = kw.pop("context", {"run": r[system]})
        return Case(
            exercise, role, name, answer, context, kw.pop("p", params(system)), expect, says
        )

    # What the runs were written to show, before the fault (T0 to T0 + 4.5 s: scrapes at
    # T0, T0 + 1 ... T0 + 4, five per instance).
    shed_per_s = _shed_rate(r["admission"])
    # 12 queued, and a ready task on each worker at 3 scrapes of 5
    workers = _use((1.0, 13.2), (0.014, 0.0), "workers")
    # a task on each worker at 2 scrapes of 5, of 4 threads each
    admission = _use((0.1, 0.0), (0.75, shed_per_s), "admission")
    none = _use((0.1, 0.0), (0.012, 0.0), "none")
    fault_rows = _fault_rows(r["workers"])
    window = FAULT[1] - FAULT[0]
    lat = fault_rows["latency_intended_us"] / 1000
    red = (len(fault_rows) / window, 1 - fault_rows["ok"].mean(), float(np.quantile(lat, 0.9)))
    adm_rows = _fault_rows(r["admission"])
    adm_red = (
        len(adm_rows) / window,
        1 - adm_rows["ok"].mean(),
        float(np.quantile(adm_rows["latency_intended_us"] / 1000, 0.9)),
    )
    whole = r["workers"].sent_requests
    whole_q = float(np.quantile(whole["latency_intended_us"] / 1000, 0.9))

    cases = [
        q("lab08.q1", "reference", "workers full", workers, "pass", "saturated: workers"),
        q("lab08.q1", "reference", "admission full", admission, "pass", system="admission"),
        q("lab08.q1", "reference", "nothing full", none, "pass", system="none"),
        q("lab08.q1", "blank", "ellipsis", ..., "not answered"),
        q(
            "lab08.q1",
            "wrong model",
            "the busiest is the bottleneck",
            _use((0.1, 0.0), (0.012, 0.0), "workers"),
            "fail",
            "busiest",
            system="none",
        ),
        q(
            "lab08.q1",
            "wrong model",
            "requests in the service over the threads",
            _use((12.0 / 8, 0.0), (0.012, 0.0), "workers"),
            "fail",
            "count the tasks",
            system="none",
        ),
        q(
            "lab08.q1",
            "wrong model",
            "a missing series left out of the mean",
            _use((2 / 8, 0.0), (0.012, 0.0), "none"),
            "fail",
            "utilisation",
            system="none",
        ),
        q(
            "lab08.q1",
            "wrong model",
            "shed as a share",
            _use((0.1, 0.0), (0.75, shed_per_s / 60.0), "admission"),
            "fail",
            "per second",
            system="admission",
        ),
        q(
            "lab08.q1",
            "made-up context",
            "figures",
            workers,
            "fail",
            "mapping",
            context={"run": {"workers": 1.0}},
        ),
        q(
            "lab08.q1",
            "made-up context",
            "another system's run",
            workers,
            "fail",
            "threads_per_worker",
            p=params("admission"),
        ),
        q("lab08.q3", "reference", "the fault's requests", red, "pass", "correct"),
        q("lab08.q3", "blank", "ellipses", (..., ..., ...), "not answered"),
        q(
            "lab08.q3",
            "wrong model",
            "the mean",
            (red[0], red[1], float(lat.mean())),
            "fail",
            "mean",
        ),
        q(
            "lab08.q3",
            "wrong model",
            "the whole run's quantile",
            (red[0], red[1], whole_q),
            "fail",
            "whole run",
        ),
        q(
            "lab08.q3",
            "wrong model",
            "the injected errors only",
            (adm_red[0], float((adm_rows["status"] == 500).mean()), adm_red[2]),
            "fail",
            "every failed request",
            system="admission",
        ),
        q(
            "lab08.q3",
            "made-up context",
            "another system's run",
            red,
            "fail",
            "threads_per_worker",
            p=params("none"),
        ),
        q("lab08.q4", "reference", "from the logs", (SLOW, "service", 600.0), "pass", "correct"),
        q("lab08.q4", "blank", "ellipses", (..., ..., ...), "not answered"),
        q(
            "lab08.q4",
            "wrong model",
            "the service's ms whole",
            (SLOW, "service", 900.0),
            "fail",
            "worker's part included",
        ),
        q(
            "lab08.q4",
            "wrong model",
            "slowest from the actual start",
            (LATE, "service", 910.0),
            "fail",
            "meant to start",
        ),
        q("lab08.q4", "wrong model", "the worker", (SLOW, "worker", 300.0), "fail", "not spent"),
        q(
            "lab08.q4",
            "made-up context",
            "figures",
            (SLOW, "service", 600.0),
            "fail",
            "mapping",
            context={"run": {"p99_ms": 1000.0}},
        ),
        q(
            "lab08.q5",
            "reference",
            "model answer",
            "RED is what the users feel, so it pages; USE looks at each resource and finds the "
            "one short of capacity, or shows none is.",
            "needs review",
            context={},
        ),
        q("lab08.q5", "blank", "spaces", "  ", "not answered", context={}),
        q("lab08.q5", "wrong model", "a number", 3, "fail", "text", context={}),
        q(
            "lab08.q5",
            "made-up context",
            "with a run",
            "USE finds the saturated resource from its metrics, one by one; RED says what the "
            "users feel and is what to page on.",
            "needs review",
        ),
    ]
    if shutil.which("promtool") or __import__("os").environ.get("SCALELAB_PROMTOOL"):
        cases += [
            q("lab08.q2", "reference", "rate of 500s", RULE, "pass", "promtool test rules passed"),
            q("lab08.q2", "reference", "with admission shedding", RULE, "pass", system="admission"),
            q("lab08.q2", "blank", "ellipsis", ..., "not answered"),
            q(
                "lab08.q2",
                "wrong model",
                "a counter over a threshold",
                {"expr": "scalelab_faults_injected_total > 0"},
                "fail",
                "still firing",
            ),
            q(
                "lab08.q2",
                "wrong model",
                "every 5xx",
                {"expr": 'sum(rate(scalelab_requests_total{status=~"5.."}[2s])) > 0'},
                "fail",
                "before the fault",
                system="admission",
            ),
            q(
                "lab08.q2",
                "wrong model",
                "a long window",
                {"expr": 'sum(rate(scalelab_requests_total{status="500"}[30s])) > 0'},
                "fail",
                "still firing",
            ),
            q(
                "lab08.q2",
                "wrong model",
                "a long for",
                {**RULE, "for": "1m"},
                "fail",
                "silent during the fault",
            ),
            q(
                "lab08.q2",
                "made-up context",
                "another error rate",
                RULE,
                "fail",
                "error_rate",
                context={"run": r["other_rate"]},
            ),
        ]
    return cases


def _shed_rate(run: Run) -> float:
    m = run.metrics
    shed = m[(m["metric"] == "scalelab_rejected_total") & (m["t"] >= T0) & (m["t"] < FAULT[0])]
    shed = shed.sort_values("t")
    return float(shed["value"].iloc[-1] - shed["value"].iloc[0]) / float(
        shed["t"].iloc[-1] - shed["t"].iloc[0]
    )


def _fault_rows(run: Run) -> pd.DataFrame:
    sent = run.sent_requests
    t = sent["intended_start"]
    return sent[(t >= FAULT[0]) & (t < FAULT[1])]


ensure_hidden()


@pytest.fixture(scope="module")
def cases(runs: dict[str, Run]) -> list[Case]:
    return _cases(runs)


@pytest.mark.parametrize("exercise", [e.id for e in get_lab("lab08").exercises])
def test_exercise(exercise: str, cases: list[Case]) -> None:
    if exercise == "lab08.q2" and not any(c.exercise == exercise for c in cases):
        pytest.skip("promtool is not installed (apt-get install prometheus): rules are not tried")
    check_cases(exercise, cases)


def test_promtool_series_hold_the_last_sample_of_each_second(runs: dict[str, Run]) -> None:
    """Each grid point is the series' last sample at or before it; ``_`` before the first."""
    from scalelab.analysis.alerts import promtool_series

    series = promtool_series(runs["workers"])
    assert series.start == SCRAPES[0] and series.points == len(SCRAPES)
    by_name = {s["series"]: s["values"].split() for s in series.series}
    worker = 'dask_worker_threads{job="dask-worker",worker="tcp://127.0.0.1:40002"}'
    assert by_name[worker] == ["_"] + ["1.0"] * (len(SCRAPES) - 1)  # scraped 30 ms after
    shed = by_name['scalelab_rejected_total{job="scalelab-service"}']
    assert shed == ["0.0"] * len(SCRAPES)


def test_firing_times_follow_the_rule(runs: dict[str, Run]) -> None:
    """The reference rule fires from the first scrape after the fault's first 500 to two
    seconds after its last."""
    from scalelab.analysis.alerts import firing_times, promtool_binary

    if promtool_binary() is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    fired = firing_times(RULE["expr"], runs["workers"])
    on = fired.loc[fired["firing"], "t"] - T0
    assert list(on) == [5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0], list(on)
