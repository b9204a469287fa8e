"""Firing a run's fault schedule on time, through the service's admin API.

The schedule's clock starts at the load's first request as the service sees it:
a :class:`FaultRunner` thread polls the service's ``/metrics`` every
:data:`POLL_S` seconds from the moment Locust is launched, and takes the first
poll that finds a data-plane request (answered or in flight) as time zero. So
``at_s = 5`` means five seconds after the first request, however long Locust
took to start (often a second or more on a busy machine). The estimate is within
about one poll interval of the first request; ``run.json`` also gives each
action's offset from the first request's recorded intended start.

Each action is a row of ``events.parquet`` (kind ``fault``, name ``stall``,
``set``, ``revert``, a fault kind such as ``worker_kill``, or ``end``; its time
the moment the admin request was sent; ``until`` the time the fault ended) and
an entry of ``run.json``'s ``faults`` list. Fault kinds go through ``POST
/admin/faults`` and end with ``DELETE /admin/faults/{id}``. An action the service
refuses, or one still due when the load ends, is reported by :meth:`FaultRunner.problems`,
and the runner fails the run: a run without the faults its spec asked for does
not answer the spec's question. (A revert still due then is only listed as not
fired: the service stops with the run.)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from scalelab.config import get_path, set_path
from scalelab.experiment.events import EventLog
from scalelab.experiment.spec import FaultSpec
from scalelab.prometheus_text import metric_value

POLL_S = 0.01
"""Interval between polls of ``/metrics`` while waiting for the first request."""

ADMIN_TIMEOUT_S = 5.0
"""Longest an admin request may take before the action counts as failed."""

_REQUEST_SAMPLES = ("scalelab_requests_total", "scalelab_in_flight")
"""The samples whose sum counts the data-plane requests answered and in flight."""


@dataclass(order=True)
class Action:
    """One thing to do at ``time_s`` seconds after the first request."""

    time_s: float
    order: int  # reverts before new changes at the same time, then by entry
    index: int
    name: str  # stall | set | revert | a fault kind | end
    fault: FaultSpec = field(compare=False)


def plan(faults: list[FaultSpec]) -> list[Action]:
    """The schedule's actions in the order they fire (a `set` with ``until_s`` gives two)."""
    actions = []
    for i, fault in enumerate(faults):
        actions.append(Action(fault.at_s, 1, i, fault.kind, fault))
        if fault.until_s is not None:
            end = "revert" if fault.kind == "set" else "end"
            actions.append(Action(fault.until_s, 0, i, end, fault))
    return sorted(actions)


def requests_seen(metrics_text: str) -> float:
    """Data-plane requests answered plus in flight, from the service's Prometheus text."""
    return sum(metric_value(metrics_text, name) for name in _REQUEST_SAMPLES)


def nested(dotted: dict[str, Any]) -> dict[str, Any]:
    """``{"faults.error_rate": 0.2}`` as the body ``{"faults": {"error_rate": 0.2}}``."""
    body: dict[str, Any] = {}
    for key, value in dotted.items():
        set_path(body, key, value)
    return body


class FaultRunner:
    """A thread that fires a fault schedule against one service, timed from the first request."""

    def __init__(
        self,
        url: str,
        faults: list[FaultSpec],
        events: EventLog,
        *,
        headers: dict[str, str] | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self.url = url.rstrip("/")
        self.faults = list(faults)
        self.events = events
        self.headers = dict(headers or {})
        self.poll_s = poll_s
        self.t0: float | None = None
        """Unix time taken as the first request (time zero of the schedule), once seen."""
        self.records: list[dict[str, Any]] = []
        """One dict per action fired, in order (what ``run.json`` lists)."""
        self._plan = plan(self.faults)
        self._previous: dict[int, dict[str, Any]] = {}
        self._ids: dict[int, str] = {}
        """The service's id of each fault started, by schedule index."""
        self._started: dict[int, float] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="scalelab-faults", daemon=True)

    def start(self) -> FaultRunner:
        """Start waiting for the first request, then fire each action on time."""
        self._thread.start()
        return self

    def stop(self, timeout_s: float = ADMIN_TIMEOUT_S + 1) -> None:
        """Fire nothing more; wait for an action in progress to finish."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    # -- results -----------------------------------------------------------------------------

    def window(self) -> tuple[float, float] | None:
        """Unix times from the first action to the end of the last fault, or None if none fired.

        A stall ends ``stall`` seconds after it was sent, a `set` with ``until_s``
        at its revert, and a `set` without one the moment it was applied.
        """
        spans = self.spans()
        if not spans:
            return None
        return min(s["start"] for s in spans), max(s["end"] for s in spans)

    def spans(self) -> list[dict[str, Any]]:
        """Each fault that started: its index, kind, start and end (Unix times), in order.

        A stall ends ``stall`` seconds after it was sent; a `set` at its revert;
        another fault when its end was sent; without an end (a `set` without
        ``until_s``, an instantaneous kill) at its start.
        """
        with self._lock:
            records = [r for r in self.records if r["ok"]]
        spans: dict[int, dict[str, Any]] = {}
        for r in records:
            if r["name"] in ("revert", "end"):
                if r["index"] in spans:
                    spans[r["index"]]["end"] = r["t"]
                continue
            end = r["t"] + (r.get("seconds") or 0.0)
            spans[r["index"]] = {
                "index": r["index"],
                "kind": r["name"],
                "start": r["t"],
                "end": end,
            }
        return sorted(spans.values(), key=lambda s: s["start"])

    def problems(self) -> list[str]:
        """Actions that failed, and actions still due when the schedule was stopped."""
        with self._lock:
            records = list(self.records)
        out = [f"{r['fault']}: {r['name']} failed: {r['error']}" for r in records if not r["ok"]]
        done = {(r["index"], r["name"]) for r in records}
        for action in self._plan:
            if (action.index, action.name) in done or action.name in ("revert", "end"):
                continue  # an end due after the load ended: the service stops with the run
            what = action.fault.describe(action.index)
            if self.t0 is None:
                out.append(f"{what}: never fired: no request reached the service")
            else:
                out.append(
                    f"{what}: {action.name} due at {action.time_s:g} s never fired: the load ended "
                    "first; make it earlier or lengthen duration_s"
                )
        return out

    def report(self, first_request: float | None = None) -> dict[str, Any]:
        """What ``run.json`` keeps: the clock, each action fired, and any problem.

        ``first_request`` (the earliest intended start in ``requests.parquet``)
        adds each action's offset from it, next to the offset from time zero.
        """
        with self._lock:
            records = [dict(r) for r in self.records]
        if first_request is not None:
            for r in records:
                r["offset_from_first_request_s"] = r["t"] - first_request
        fired = {(r["index"], r["name"]) for r in records}
        return {
            "clock": "first request seen by the service (polling /metrics)",
            "t0": self.t0,
            "t0_minus_first_request_s": (
                self.t0 - first_request
                if self.t0 is not None and first_request is not None
                else None
            ),
            "actions": records,
            "not_fired": [
                {"index": a.index, "name": a.name, "at_s": a.time_s}
                for a in self._plan
                if (a.index, a.name) not in fired
            ],
            "problems": self.problems(),
        }

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        with httpx.Client(timeout=ADMIN_TIMEOUT_S, headers=self.headers) as client:
            t0 = self._wait_first_request(client)
            if t0 is None:
                return
            self.t0 = t0
            self.events.add("note", "fault_clock", at=t0, source="first request seen by service")
            for action in self._plan:
                due = t0 + action.time_s
                if self._stop.wait(max(0.0, due - time.time())):
                    return
                self._fire(client, action, due)

    def _wait_first_request(self, client: httpx.Client) -> float | None:
        """Time zero: midway between the last poll that saw no new request and the first that did.

        Requests are counted from the first answer of ``/metrics``, so a service
        that served other loads before this one is timed from this load.
        """
        baseline: float | None = None
        last_empty = time.time()
        while not self._stop.is_set():
            sent = time.time()
            try:
                seen = requests_seen(client.get(f"{self.url}/metrics").text)
            except httpx.HTTPError:
                seen = None
            if seen is not None:
                if baseline is None:
                    baseline = seen
                elif seen > baseline:
                    return (last_empty + sent) / 2
                last_empty = sent
            self._stop.wait(self.poll_s)
        return None

    def _fire(self, client: httpx.Client, action: Action, due: float) -> None:
        fault = action.fault
        record: dict[str, Any] = {
            "index": action.index,
            "fault": fault.describe(action.index),
            "name": action.name,
            "at_s": action.time_s,
        }
        t = time.time()
        start_t: float | None = None
        try:
            if action.name == "end":
                fault_id = self._ids.get(action.index)
                if fault_id is None:
                    raise RuntimeError("its fault never started, so there is nothing to end")
                record["id"] = fault_id
                response = client.delete(f"{self.url}/admin/faults/{fault_id}")
                start_t = self._started.get(action.index)
            elif action.name not in ("stall", "set", "revert"):
                body = {"kind": action.name, "params": fault.params}
                record["params"] = fault.params
                response = client.post(f"{self.url}/admin/faults", json=body)
                if response.status_code == 201:  # started: its id ends it later
                    answer = response.json()
                    self._ids[action.index] = answer["id"]
                    record["id"] = answer["id"]
                    record["service"] = answer.get("detail")
            elif action.name == "stall":
                record["seconds"] = fault.stall
                response = client.post(f"{self.url}/admin/stall", params={"seconds": fault.stall})
            elif action.name == "set":
                assert fault.set is not None  # the spec's validation guarantees it
                current = client.get(f"{self.url}/admin/config")
                current.raise_for_status()
                config = current.json()
                previous = {k: get_path(config, k) for k in fault.set}
                self._previous[action.index] = previous
                record.update(values=fault.set, previous=previous)
                t = time.time()
                response = client.put(f"{self.url}/admin/config", json=nested(fault.set))
            else:
                start_t = self._started.get(action.index)
                before = self._previous.get(action.index)
                if before is None:
                    raise RuntimeError("its set never took effect, so there is nothing to revert")
                record["values"] = before
                response = client.put(f"{self.url}/admin/config", json=nested(before))
            record["status"] = response.status_code
            record["ok"] = response.status_code in (200, 201)
            if not record["ok"]:
                record["error"] = f"HTTP {response.status_code}: {response.text[:300]}"
        except (httpx.HTTPError, KeyError, RuntimeError, ValueError) as exc:
            record.update(ok=False, status=0, error=f"{type(exc).__name__}: {exc}")
        record["t"] = t
        record["late_ms"] = (t - due) * 1000.0
        record["answered_after_ms"] = (time.time() - t) * 1000.0
        record["offset_s"] = t - (self.t0 or t)
        with self._lock:
            self.records.append(record)
        detail = {k: v for k, v in record.items() if k not in ("name", "t")}
        if action.name in ("end", "revert"):
            self.events.fault(action.name, at=t, until=t, **detail)
            if start_t is not None and record["ok"]:
                self.events.set_until(start_t, t)
            return
        lasts = record["ok"] and fault.until_s is not None
        until = None if lasts else t + (record.get("seconds") or 0.0)
        self.events.fault(action.name, at=t, until=until, **detail)
        if record["ok"]:
            self._started[action.index] = t
