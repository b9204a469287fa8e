"""Hidden part of lab 08: USE of two resources, an alert tried with promtool, RED over the fault,
the slowest request's phases."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scalelab.analysis import fault_spans
from scalelab.analysis.alerts import promtool_binary, try_rule
from scalelab.analysis.load import Run
from scalelab.analysis.prometheus import parse_labels
from scalelab.exercises import AnswerError, Verdict, hide
from scalelab.exercises.context import Context
from scalelab.exercises.labs.lab08 import CLEAR_S, DETECT_S
from scalelab.logs import lines_of

SHED_PER_S = 1.0
"""An admission limit that shed at least this many requests a second was saturated."""
WAITING = 1.0
"""Worker threads with at least this many tasks waiting on average were saturated..."""
BUSY = 0.8
"""... when they were also this busy."""

# --- the run's fault ------------------------------------------------------------------------


def fault_window(run: Run) -> tuple[float, float]:
    """When the run's injected fault (its ``set``) started and ended (Unix s)."""
    spans = fault_spans(run)
    spans = spans[spans["name"] == "set"]
    if spans.empty:
        raise AnswerError(
            f"run {run.run_id} recorded no fault; keep the spec's [[faults]] set of "
            "faults.error_rate (with until_s) in your overrides"
        )
    start, end = float(spans["start"].iloc[0]), float(spans["end"].iloc[0])
    if end <= start:
        raise AnswerError(f"run {run.run_id}'s fault never ended; give it an until_s")
    return start, end


def confirm_fault(run: Run, ctx: Context) -> None:
    """The run's fault failed the share of requests the grader set."""
    faults = run.spec.get("faults") or []
    wanted = float(ctx.param("error_rate"))
    got = (faults[0].get("set") or {}).get("faults.error_rate") if faults else None
    if got is None or not math.isclose(float(got), wanted, rel_tol=1e-9):
        raise AnswerError(
            f"run {run.run_id} injected faults.error_rate={got!r}; this lab's fault fails "
            f"P.error_rate={wanted!r} of the requests"
        )


# --- q1: USE --------------------------------------------------------------------------------


def use_window(run: Run) -> tuple[float, float]:
    """From the first request's intended start to the fault's start."""
    sent = run.sent_requests
    if sent.empty:
        raise AnswerError(f"run {run.run_id} sent no request")
    return float(sent["intended_start"].min()), fault_window(run)[0]


def _instance(source: str, labels: dict[str, str]) -> tuple[str, str]:
    return source, labels.get("worker", "")


def _series_means(run: Run, metric: str, window: tuple[float, float], **match: str) -> list[float]:
    """The mean over the window's scrapes of ``metric`` (its matching series added up), per
    instance scraped; a scrape without the series counts 0 (Dask exports a task state only
    while some task is in it)."""
    m = run.metrics
    a, b = window
    inside = m[(m["t"] >= a) & (m["t"] < b)]
    labels = [parse_labels(x) for x in inside["labels"]]
    keys = [_instance(s, lab) for s, lab in zip(inside["source"], labels, strict=True)]
    scrapes: dict[tuple[str, str], set[float]] = {}
    totals: dict[tuple[str, str], float] = {}
    for key, lab, name, t, value in zip(
        keys, labels, inside["metric"], inside["t"], inside["value"], strict=True
    ):
        scrapes.setdefault(key, set()).add(float(t))
        if name == metric and all(lab.get(k) == v for k, v in match.items()):
            totals[key] = totals.get(key, 0.0) + float(value)
    return [total / len(scrapes[key]) for key, total in totals.items()]


def use_figures(run: Run) -> dict[str, tuple[float, float]]:
    """(utilisation, saturation) of the worker threads and of the admission limit."""
    window = use_window(run)
    executing = sum(_series_means(run, "dask_worker_tasks", window, state="executing"))
    threads = sum(_series_means(run, "dask_worker_threads", window))
    ready = sum(_series_means(run, "dask_worker_tasks", window, state="ready"))
    queued = sum(_series_means(run, "dask_scheduler_tasks", window, state="queued"))
    in_flight = _series_means(run, "scalelab_in_flight", window)
    if threads <= 0 or not in_flight:
        raise AnswerError(
            f"run {run.run_id} has no scrape of the workers or the service before its fault; "
            "start the fault later"
        )
    limit = float(run.spec["service"]["admission"]["max_in_flight"])
    m = run.metrics
    a, b = window
    shed = m[(m["metric"] == "scalelab_rejected_total") & (m["t"] >= a) & (m["t"] < b)]
    shed = shed.sort_values("t")
    span = float(shed["t"].iloc[-1] - shed["t"].iloc[0]) if len(shed) >= 2 else 0.0
    shed_rate = float(shed["value"].iloc[-1] - shed["value"].iloc[0]) / span if span > 0 else 0.0
    return {
        "workers": (executing / threads, ready + queued),
        "admission": (in_flight[0] / limit, shed_rate),
    }


def saturated(figures: dict[str, tuple[float, float]]) -> str:
    """The resource that had work it could not take on, by the USE figures."""
    if figures["admission"][1] >= SHED_PER_S:
        return "admission"
    u, s = figures["workers"]
    if u >= BUSY and s >= WAITING:
        return "workers"
    return "none"


def _near(a: float, b: float, rel: float, abs_: float) -> bool:
    return abs(a - b) <= max(abs_, rel * abs(b))


def use_reference(ctx: Context) -> dict[str, Any]:
    figures = use_figures(ctx.run("run"))
    return {**figures, "saturated": saturated(figures)}


def judge_use(answer: dict[str, Any], ctx: Context) -> Verdict:
    """Both resources' USE figures within 0.05 (U) and 10 % (S), and the saturated one."""
    run = ctx.run("run")
    figures = use_figures(run)
    truth = saturated(figures)
    names = {"workers": "worker threads", "admission": "admission limit"}
    for key, name in names.items():
        (u, s), (tu, ts) = answer[key], figures[key]
        if not _near(u, tu, 0.10, 0.05):
            if key == "workers":
                in_flight = _series_means(run, "scalelab_in_flight", use_window(run))[0]
                threads = sum(_series_means(run, "dask_worker_threads", use_window(run)))
                if _near(u, in_flight / threads, 0.10, 0.05):
                    return Verdict(
                        False,
                        "the worker threads' utilisation: the requests in the service are not all "
                        "on a thread; count the tasks the workers say they are executing.",
                    )
            return Verdict(
                False,
                f"the {name}'s utilisation {u:.3g} is not what the run's "
                "metrics show over the window.",
            )
        if not _near(s, ts, 0.10, 0.5):
            if key == "admission" and figures["admission"][1] > 0:
                requests = _requests_rate(run)
                if requests > 0 and _near(s, ts / requests, 0.10, 0.02):
                    return Verdict(
                        False,
                        "the admission limit's saturation is asked in requests "
                        "shed per second, not as a share.",
                    )
            return Verdict(
                False,
                f"the {name}'s saturation {s:.3g} is not what the run's "
                "metrics show over the window.",
            )
    said = answer["saturated"]
    if said != truth:
        busiest = max(names, key=lambda k: figures[k][0])
        if truth == "none" and said == busiest:
            return Verdict(
                False,
                f"{said!r} was the busiest, but was it short of capacity? Look at its saturation.",
            )
        return Verdict(False, f"{said!r} is not the resource this run's metrics show saturated.")
    return Verdict(
        True,
        f"correct: saturated: {truth} (workers U={figures['workers'][0]:.2f} "
        f"S={figures['workers'][1]:.2f}; admission U={figures['admission'][0]:.2f} "
        f"S={figures['admission'][1]:.2f}/s).",
    )


def _requests_rate(run: Run) -> float:
    a, b = use_window(run)
    start = run.sent_requests["intended_start"]
    return float(((start >= a) & (start < b)).sum()) / max(b - a, 1e-9)


hide("lab08.q1", judge=judge_use, reference=use_reference)

# --- q2: the alert ----------------------------------------------------------------------------


def alert_times(run: Run) -> tuple[list[float], list[float]]:
    """Grid times (Unix s) at which the rule must fire, and at which it must be silent."""
    from scalelab.analysis.alerts import promtool_series

    start, end = fault_window(run)
    series = promtool_series(run)
    grid = [series.start + k for k in range(series.points)]
    firing = [t for t in grid if start + DETECT_S <= t <= end]
    silent = [t for t in grid if t < start or t >= end + CLEAR_S]
    if not firing:
        raise AnswerError(
            f"run {run.run_id}'s fault lasted {end - start:.1f} s: too short to check an alert "
            f"that may take {DETECT_S:g} s to fire; give it {DETECT_S + 1:g} s or more"
        )
    return firing, silent


REFERENCE_RULE = {
    "expr": 'sum(rate(scalelab_requests_total{status="500"}[2s])) > 0',
    "for": "0s",
}


def judge_rule(answer: dict[str, Any], ctx: Context) -> Verdict:
    """``promtool test rules`` on the run's series: firing during the fault, silent outside."""
    run = ctx.run("run")
    confirm_fault(run, ctx)
    if promtool_binary() is None:
        raise RuntimeError(
            "promtool is not installed on the grading machine (apt-get install prometheus)"
        )
    firing, silent = alert_times(run)
    start, end = fault_window(run)
    result = try_rule(answer["expr"], run, for_s=answer["for"], firing=firing, silent=silent)
    if result.passed:
        return Verdict(
            True,
            f"correct: promtool test rules passed at {len(firing)} seconds "
            f"of the fault and {len(silent)} outside it.",
        )
    before = [t for t in result.wrong_firing if t < start]
    after = [t for t in result.wrong_firing if t >= end]
    parts = []
    if before:
        parts.append(
            f"it fired before the fault, at {before[0] - start:+.0f} s from its start "
            "(the system's everyday symptoms are not the fault's)"
        )
    if after:
        parts.append(
            f"it was still firing {after[-1] - end:.0f} s after the fault ended "
            "(does what it watches ever go down?)"
        )
    if result.wrong_silent:
        parts.append(
            f"it was silent during the fault, at {result.wrong_silent[0] - start:+.0f} s "
            "from its start"
        )
    return Verdict(False, "promtool test rules failed: " + "; ".join(parts) + ".")


hide("lab08.q2", judge=judge_rule, reference=lambda ctx: dict(REFERENCE_RULE))

# --- q3: RED over the fault -----------------------------------------------------------------


def fault_requests(run: Run) -> Any:
    """The requests sent whose intended start fell while the fault was on."""
    start, end = fault_window(run)
    sent = run.sent_requests
    t = sent["intended_start"]
    return sent[(t >= start) & (t < end)], end - start


def red_figures(run: Run, quantile: float) -> tuple[float, float, float]:
    """Rate (requests/s), error ratio and the quantile (ms) of the fault's requests."""
    rows, length = fault_requests(run)
    if rows.empty:
        raise AnswerError(f"run {run.run_id} sent no request while its fault was on")
    ms = rows["latency_intended_us"].to_numpy(dtype=float) / 1000.0
    errors = 1.0 - float(rows["ok"].astype(bool).mean())
    return len(rows) / length, errors, float(np.quantile(ms, quantile))


def judge_red(answer: tuple[float, float, float], ctx: Context) -> Verdict:
    """Rate within 5 %, errors within 0.02, the quantile within 5 % (or 2 ms)."""
    run = ctx.run("run")
    q = float(ctx.param("quantile"))
    rate, errors, ms = answer
    t_rate, t_errors, t_ms = red_figures(run, q)
    rows, length = fault_requests(run)
    lat = rows["latency_intended_us"].to_numpy(dtype=float) / 1000.0
    whole = run.sent_requests
    if not _near(rate, t_rate, 0.05, 0.0):
        if _near(rate, len(whole) / _span(whole), 0.05, 0.0) and not _near(
            len(whole) / _span(whole), t_rate, 0.05, 0.0
        ):
            return Verdict(False, "the rate is the whole run's; the question is the fault's.")
        return Verdict(
            False,
            f"a rate of {rate:.4g} requests/s is not what the clients sent while the fault was on.",
        )
    if not _near(errors, t_errors, 0.0, 0.02):
        status = rows["status"].to_numpy()
        only_500 = float((status == 500).mean())
        if _near(errors, only_500, 0.0, 0.01):
            return Verdict(
                False,
                "those are the injected errors only; every failed request "
                "counts, whatever failed it.",
            )
        return Verdict(False, f"an error ratio of {errors:.3g} is not the fault's requests'.")
    if not _near(ms, t_ms, 0.05, 2.0):
        if _near(ms, float(lat.mean()), 0.02, 0.5):
            return Verdict(False, "that is the mean duration; RED's duration is a quantile.")
        whole_q = float(np.quantile(whole["latency_intended_us"].to_numpy() / 1000.0, q))
        if _near(ms, whole_q, 0.02, 0.5):
            return Verdict(False, "that quantile is over the whole run, not the fault's window.")
        return Verdict(False, f"{ms:.4g} ms is not the {q:g} quantile of the fault's requests.")
    return Verdict(
        True,
        f"correct: {t_rate:.1f} requests/s, {t_errors:.1%} errors, "
        f"q{q:g} = {t_ms:.1f} ms over {length:.1f} s.",
    )


def _span(rows: Any) -> float:
    start = rows["intended_start"].to_numpy(dtype=float)
    return max(float(start.max() - start.min()), 1e-9)


hide(
    "lab08.q3",
    judge=judge_red,
    reference=lambda ctx: red_figures(ctx.run("run"), float(ctx.param("quantile"))),
)

# --- q4: the slowest request ----------------------------------------------------------------


def phases(run: Run, request_id: str) -> dict[str, float]:
    """The request's time in ms: ``client``, ``service`` (not on a worker), ``worker``."""
    rows = run.requests[run.requests["request_id"] == request_id]
    if rows.empty:
        raise AnswerError(f"no request {request_id!r} in run {run.run_id}")
    latency = float(rows["latency_intended_us"].iloc[0]) / 1000.0
    lines = lines_of(run.path, request_id)
    service = sum(float(x.get("ms") or 0.0) for x in lines if x.get("event") == "request")
    worker = sum(float(x.get("ms") or 0.0) for x in lines if x.get("event") == "task")
    return {"client": latency - service, "service": service - worker, "worker": worker}


def slowest_id(run: Run, column: str = "latency_intended_us") -> str:
    """The id of the request with the longest latency (from its intended start)."""
    sent = run.sent_requests
    sent = sent[sent["request_id"].astype(str) != ""]
    if sent.empty:
        raise AnswerError(f"run {run.run_id} recorded no request id")
    return str(sent.loc[sent[column].idxmax(), "request_id"])


def slowest_reference(ctx: Context) -> tuple[str, str, float]:
    run = ctx.run("run")
    rid = slowest_id(run)
    parts = phases(run, rid)
    phase = max(parts, key=lambda k: parts[k])
    return rid, phase, parts[phase]


def judge_slowest(answer: tuple[str, str, float], ctx: Context) -> Verdict:
    """The slowest request's id, its longest phase, and that phase's ms within 1 ms or 1 %."""
    run = ctx.run("run")
    rid, phase, ms = answer
    truth = slowest_id(run)
    if rid != truth:
        if rid == slowest_id(run, "latency_us"):
            return Verdict(
                False,
                "that request was slowest from when it was sent; the "
                "question is from when it was meant to start.",
            )
        return Verdict(False, f"{rid!r} is not the run's slowest request.")
    parts = phases(run, truth)
    longest = max(parts, key=lambda k: parts[k])
    if phase != longest or not _near(ms, parts[longest], 0.01, 1.0):
        service_ms = parts["service"] + parts["worker"]
        if phase == "service" and _near(ms, service_ms, 0.01, 1.0):
            return Verdict(
                False,
                "the service's line times the whole request in the service, "
                "the worker's part included.",
            )
        if phase != longest:
            return Verdict(False, f"most of {rid}'s time was not spent in {phase!r}.")
        return Verdict(False, f"{ms:.4g} ms is not the time {rid} spent in {phase!r}.")
    return Verdict(
        True,
        f"correct: {rid} spent {ms:.1f} ms in {phase!r} "
        f"(client {parts['client']:.1f}, service {parts['service']:.1f}, "
        f"worker {parts['worker']:.1f} ms).",
    )


hide("lab08.q4", judge=judge_slowest, reference=slowest_reference)

# --- q5: reflection -----------------------------------------------------------------------

hide(
    "lab08.q5",
    model_answer=(
        "RED describes the service as its users see it (how many requests, how many failed, how "
        "slow), so it shows that something is wrong; USE describes each resource (how busy, how "
        "much work waits, its errors), so it shows which part is short of capacity, or, when "
        "none is, that the time goes elsewhere (a slow layer). Page on RED symptoms, which are "
        "what users feel, and use USE to find the cause."
    ),
    rubric=(
        "RED: the user's view of the requests (symptoms)",
        "USE: per resource, finds which is saturated (causes), or that none is",
        "page on symptoms (RED), diagnose with USE",
    ),
)
