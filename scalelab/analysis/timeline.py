"""What the service and the cluster were doing over a run, and when its faults were on.

:func:`resource_series` turns ``metrics.parquet`` (the service's, the Dask
scheduler's and the workers' ``/metrics``, scraped once a second) into tidy
time series: CPU of each process, requests and Dask tasks in flight, and Dask
tasks finished per second. :func:`fault_windows` turns ``events.parquet`` into
the intervals during which a fault was on. Times are seconds since the run's
first request, as in :func:`~scalelab.analysis.per_second`, so both line up
with the client's throughput and latency.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from scalelab.analysis.frames import load_start
from scalelab.analysis.load import Run

CPU = "cpu_percent"
IN_FLIGHT = "in_flight"
TASK_RATE = "tasks_per_s"
KINDS = {
    CPU: "CPU (% of one core)",
    IN_FLIGHT: "in flight",
    TASK_RATE: "Dask tasks per second",
}
"""The kinds of :func:`resource_series` and their axis labels, with units."""

_COLUMNS = {"t": "float64", "kind": "object", "series": "object", "value": "float64"}
_FAULT_COLUMNS = {"start": "float64", "end": "float64", "name": "object", "label": "object"}


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def _parse_labels(text: Any) -> dict[str, str]:
    if not isinstance(text, str) or not text:
        return {}
    return dict(part.split("=", 1) for part in text.split(",") if "=" in part)


def _worker_name(address: str) -> str:
    """``tcp://127.0.0.1:40001`` gives ``worker :40001`` (the host is the same on one machine)."""
    return "worker :" + address.rsplit(":", 1)[-1] if address else "worker"


def _samples(m: pd.DataFrame, source: str, metric: str) -> pd.DataFrame:
    rows = m[(m["source"] == source) & (m["metric"] == metric)]
    return rows[["t", "labels", "value"]]


def _rate(t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-second rate of a counter between consecutive scrapes (a reset gives no point)."""
    order = np.argsort(t)
    t, v = t[order], v[order]
    dt, dv = np.diff(t), np.diff(v)
    ok = (dt > 0) & (dv >= 0)
    return t[1:][ok], dv[ok] / dt[ok]


def _same_process(m: pd.DataFrame) -> bool:
    """True when the scheduler runs in the service's process (an embedded LocalCluster)."""
    a = _samples(m, "service", "process_start_time_seconds")["value"]
    b = _samples(m, "scheduler", "process_start_time_seconds")["value"]
    return bool(len(a) and len(b) and abs(float(a.iloc[0]) - float(b.iloc[0])) < 0.5)


def resource_series(run: Run) -> pd.DataFrame:
    """Tidy time series of the run's processes: columns ``t``, ``kind``, ``series``, ``value``.

    Kinds (see :data:`KINDS`):

    - ``cpu_percent``: CPU of each process in % of one core, from the rate of
      ``process_cpu_seconds_total`` of the service, the scheduler (when it is a
      process of its own) and every worker;
    - ``in_flight``: requests inside the service (``scalelab_in_flight``) and
      Dask tasks the scheduler has handed to workers
      (``dask_scheduler_tasks{state="processing"}``);
    - ``tasks_per_s``: Dask tasks finished per second (the rate of
      ``dask_scheduler_prefix_state_totals_total{state="memory"}`` summed over
      task prefixes) and tasks the service submitted per second
      (``scalelab_dask_tasks_submitted_total``).

    ``t`` is seconds since the first request. A series the run did not scrape
    is simply absent; a run without ``metrics.parquet`` gives an empty frame.
    """
    m = run.metrics
    t0 = load_start(run)
    if m.empty or t0 is None:
        return _empty(_COLUMNS)
    parts: list[pd.DataFrame] = []

    def add(kind: str, series: str, t: np.ndarray, v: np.ndarray) -> None:
        if len(t):
            parts.append(pd.DataFrame({"t": t - t0, "kind": kind, "series": series, "value": v}))

    def counter(source: str, metric: str, keep: dict[str, str] | None = None) -> pd.DataFrame:
        """Per scrape, the counter summed over the label sets that match ``keep``."""
        rows = _samples(m, source, metric)
        if keep:
            labels = rows["labels"].map(_parse_labels)
            mask = labels.map(lambda d: all(d.get(k) == v for k, v in keep.items()))
            rows = rows[mask.to_numpy(dtype=bool)]
        return pd.DataFrame(rows.groupby("t", as_index=False)["value"].sum())

    embedded = _same_process(m)
    service_cpu = counter("service", "process_cpu_seconds_total")
    if len(service_cpu):
        name = "service (with the scheduler)" if embedded else "service"
        t, r = _rate(service_cpu["t"].to_numpy(float), service_cpu["value"].to_numpy(float))
        add(CPU, name, t, 100.0 * r)
    if not embedded or not len(service_cpu):
        sched = counter("scheduler", "process_cpu_seconds_total")
        t, r = _rate(sched["t"].to_numpy(float), sched["value"].to_numpy(float))
        add(CPU, "scheduler", t, 100.0 * r)
    workers = _samples(m, "worker", "process_cpu_seconds_total")
    for labels, rows in workers.groupby("labels", sort=True):
        name = _worker_name(_parse_labels(labels).get("worker", str(labels)))
        t, r = _rate(rows["t"].to_numpy(float), rows["value"].to_numpy(float))
        add(CPU, name, t, 100.0 * r)

    inflight = counter("service", "scalelab_in_flight")
    add(
        IN_FLIGHT,
        "requests in the service",
        inflight["t"].to_numpy(float),
        inflight["value"].to_numpy(float),
    )
    processing = counter("scheduler", "dask_scheduler_tasks", {"state": "processing"})
    add(
        IN_FLIGHT,
        "Dask tasks processing",
        processing["t"].to_numpy(float),
        processing["value"].to_numpy(float),
    )

    done = counter("scheduler", "dask_scheduler_prefix_state_totals_total", {"state": "memory"})
    t, r = _rate(done["t"].to_numpy(float), done["value"].to_numpy(float))
    add(TASK_RATE, "finished (scheduler)", t, r)
    submitted = counter("service", "scalelab_dask_tasks_submitted_total")
    t, r = _rate(submitted["t"].to_numpy(float), submitted["value"].to_numpy(float))
    add(TASK_RATE, "submitted (service)", t, r)
    if not parts:
        return _empty(_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def _detail(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def fault_windows(run: Run) -> pd.DataFrame:
    """When each fault was on: columns ``start``, ``end`` (s since the first request), ``name``.

    A stall lasts its ``seconds``; a configuration ``set`` lasts until the
    ``revert`` of the same fault, or to the end of the load when it has none;
    any other fault event whose detail gives ``seconds`` (or an ``end`` Unix
    time) lasts that long, and one without either is an instant (``end == start``).
    Faults that failed (``ok`` false) are left out.
    """
    ev = run.events
    t0 = load_start(run)
    if ev.empty or t0 is None:
        return _empty(_FAULT_COLUMNS)
    faults = ev[ev["kind"] == "fault"].sort_values("t")
    load_end = run.event_time("load_stop")
    if load_end is None and len(run.requests):
        load_end = float((run.requests["start"] + run.requests["latency_us"] / 1e6).max())
    rows: list[tuple[float, float, str, str]] = []
    open_sets: dict[Any, tuple[float, str]] = {}
    for _, row in faults.iterrows():
        detail = _detail(row["detail"])
        if detail.get("ok") is False:
            continue
        t, name = float(row["t"]), str(row["name"])
        if name == "set":
            values = detail.get("values") or {}
            label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in values.items()) or "set"
            open_sets[detail.get("index", len(open_sets))] = (t, label)
            continue
        if name == "revert":
            opened = open_sets.pop(detail.get("index"), None)
            if opened is not None:
                rows.append((opened[0], t, "set", opened[1]))
            continue
        if isinstance(detail.get("end"), int | float):
            end = float(detail["end"])
        else:
            end = t + float(detail.get("seconds") or 0.0)
        seconds = end - t
        rows.append((t, end, name, f"{name} {seconds:g} s" if seconds > 0 else name))
    for t_set, label in open_sets.values():
        rows.append((t_set, max(load_end or t_set, t_set), "set", label))
    frame = pd.DataFrame(rows, columns=list(_FAULT_COLUMNS))
    frame["start"] -= t0
    frame["end"] -= t0
    return frame.sort_values("start", kind="stable").reset_index(drop=True)
