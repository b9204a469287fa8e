"""Steady state as Chaos Toolkit frames it: the ``[slo]`` hypothesis judged before, during and
after each fault, with time to detect, time to recover, goodput and retry amplification.

The measured requests (after the warm-up) are placed in phases by their
intended start, around each fault's span (its start and end, from
:meth:`~scalelab.experiment.faults.FaultRunner.spans`):

- ``before``: requests answered before the first fault started (as ``slo.before``);
- ``during:i``: requests in flight at any time while fault ``i`` was on (those
  that started before it and were still waiting met it too); an instantaneous
  fault (a kill) is "on" for ``recovery_s`` after it;
- ``after:i``: requests that started from ``recovery_s`` after fault ``i`` ended
  and were answered before the next fault started (the last one: the end of
  the load); between two faults less than a second apart there is none.

Each phase gets the figures of ``summary.json`` and the verdict of every
``[slo]`` limit; the phases named by ``slo.judge`` (``before`` and ``after`` by
default) decide ``slo_pass``, and ``slo_failed_phase`` names the first phase
that failed. Per fault, over one-second windows of the answers (by the time
each request was answered, as monitoring sees them) from its start: the **time
to detect** is from the fault's start to the end of the first window that breaks
the hypothesis; the **time to recover** from the fault's end (its start, when
instantaneous) to the start of the first window from which every window up to
the next fault meets it again. **Goodput** is the rate of successful requests
answered within ``slo.goodput_ms`` (by default the ``p99_ms`` limit, else
``max_ms``, else any latency); **retry amplification** is the mean of
``attempts`` (``X-Attempts``: 1 plus each retry and hedge) over the
requests that reached the executor. docs/results-format.md defines each figure.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalelab import hdr
from scalelab.loadgen.records import histogram_of

if TYPE_CHECKING:
    from scalelab.experiment.spec import SloSpec

COLUMNS = ("intended_start", "start", "latency_us", "latency_intended_us", "ok", "status")
OPTIONAL = ("attempts", "method")
TIMEOUT_STATUSES = (0, 504)
"""A request that got no answer (0) or the service's timeout (504) counts as a timeout."""

MIN_STEADY_S = 1.0
"""Shortest steady phase formed between two faults (a shorter gap is left unjudged)."""

LATENCY_LIMITS = {"p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0, "p999_ms": 99.9}


class Requests:
    """The measured requests of a run, as columns, with their phase-relevant derived values."""

    def __init__(self, columns: dict[str, list[Any]]) -> None:
        self.c = columns
        n = len(columns.get("ok", []))
        self.n = n
        self.intended = columns.get("intended_start") or columns.get("start") or [0.0] * n
        starts = columns.get("start") or self.intended
        lat = columns.get("latency_us") or [0] * n
        self.ends = [s + v / 1e6 for s, v in zip(starts, lat, strict=True)]
        self.latency_us = columns.get("latency_intended_us") or lat
        self.ok = columns.get("ok") or []
        self.status = columns.get("status") or [200] * n
        self.attempts = columns.get("attempts") or []

    def where(self, keep: list[int]) -> dict[str, Any]:
        """The figures of the requests at the indexes ``keep``."""
        out: dict[str, Any] = {"requests": len(keep)}
        if not keep:
            return out
        errors = sum(1 for i in keep if not self.ok[i])
        out["errors"] = errors
        out["error_rate"] = errors / len(keep)
        out["timeouts"] = sum(1 for i in keep if self.status[i] in TIMEOUT_STATUSES)
        hist = histogram_of([hdr.clamp_us(self.latency_us[i]) for i in keep])
        pct = hdr.percentiles_ms(hist, LATENCY_LIMITS.values())
        for key, q in LATENCY_LIMITS.items():
            out[key] = pct[q]
        out["max_ms"] = hist.get_max_value() / 1000.0
        tried = [self.attempts[i] for i in keep if self.attempts and self.attempts[i] > 0]
        out["retry_amplification"] = sum(tried) / len(tried) if tried else None
        return out


def read_requests(path: Path, measure_from: float | None) -> Requests | None:
    """The measured requests of ``requests.parquet`` (sent ones only), or None without it."""
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    names = [c for c in (*COLUMNS, *OPTIONAL) if c in table.column_names]
    data = {c: table.column(c).to_pylist() for c in names}
    methods = data.get("method")
    keep = [
        i
        for i in range(table.num_rows)
        if (measure_from is None or data["intended_start"][i] >= measure_from)
        and (methods is None or methods[i] != "DROPPED")
    ]
    return Requests({c: [v[i] for i in keep] for c, v in data.items()})


def goodput_ms(slo: SloSpec | None) -> float | None:
    """The latency within which a success counts as goodput (None: any latency)."""
    if slo is None:
        return None
    if slo.goodput_ms is not None:
        return slo.goodput_ms
    return slo.p99_ms if slo.p99_ms is not None else slo.max_ms


def _goodput(reqs: Requests, keep: list[int], span_s: float, within_ms: float | None) -> float:
    good = sum(
        1
        for i in keep
        if reqs.ok[i] and (within_ms is None or reqs.latency_us[i] <= within_ms * 1000.0)
    )
    return good / max(span_s, 1e-9)


def _meets(name: str, value: Any, limit: float) -> bool:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return False
    return bool(value >= limit if name == "min_throughput_rps" else value <= limit)


def _failing(figures: dict[str, Any], slo: SloSpec) -> list[str]:
    failed = []
    for name, limit in slo.limits().items():
        figure = "throughput_rps" if name == "min_throughput_rps" else name
        if not _meets(name, figures.get(figure), limit):
            failed.append(name)
    return failed


def phases(
    spans: list[dict[str, Any]], recovery_s: float, load_end: float
) -> list[tuple[str, float | None, float | None]]:
    """``(name, low, high)`` of each phase; ``before``'s high is the first fault's start."""
    out: list[tuple[str, float | None, float | None]] = []
    if not spans:
        return out
    out.append(("before", None, spans[0]["start"]))
    for i, span in enumerate(spans):
        end = span["end"] if span["end"] > span["start"] else span["start"] + recovery_s
        nxt = spans[i + 1]["start"] if i + 1 < len(spans) else load_end
        out.append((f"during:{span['index']}", span["start"], min(end, nxt)))
        after = span["end"] + recovery_s
        last = i + 1 == len(spans)
        # Between two faults, a steady phase needs a second at least to say anything;
        # the last one runs to the end of the load.
        if (last and after < nxt) or (not last and nxt - after >= MIN_STEADY_S):
            out.append((f"after:{span['index']}", after, None if last else nxt))
    return out


def _in_phase(reqs: Requests, name: str, low: float | None, high: float | None) -> list[int]:
    """A fault's phase holds the requests in flight at any time of it (they met the fault);
    a steady phase those that started in it and were answered before the next fault."""
    lo = -math.inf if low is None else low
    hi = math.inf if high is None else high
    if name.startswith("during"):
        return [i for i in range(reqs.n) if reqs.intended[i] < hi and reqs.ends[i] >= lo]
    return [i for i in range(reqs.n) if reqs.intended[i] >= lo and reqs.ends[i] < hi]


def _windows_meet(
    reqs: Requests, slo: SloSpec, start: float, stop: float
) -> list[tuple[float, bool]]:
    """Whole one-second windows from ``start`` to ``stop``: each window's start and whether
    the requests answered in it (what monitoring sees) meet the hypothesis."""
    out = []
    t = start
    while t + 1.0 <= stop:  # whole windows only: the load's last moments are its stop
        keep = [i for i in range(reqs.n) if t <= reqs.ends[i] < t + 1.0]
        figures = reqs.where(keep)
        figures["throughput_rps"] = float(len(keep))
        out.append((t, not keep or not _failing(figures, slo)))
        t += 1.0
    return out


def fault_times(
    reqs: Requests, slo: SloSpec, spans: list[dict[str, Any]], load_end: float
) -> list[dict[str, Any]]:
    """Per fault: its span, time to detect and time to recover (None when not applicable)."""
    out = []
    for i, span in enumerate(spans):
        nxt = spans[i + 1]["start"] if i + 1 < len(spans) else load_end
        windows = _windows_meet(reqs, slo, span["start"], nxt)
        broken = [t for t, meets in windows if not meets]
        detect = broken[0] + 1.0 - span["start"] if broken else None
        recover: float | None = 0.0  # never broken: nothing to recover from
        if broken:
            recover = None
            after = _windows_meet(reqs, slo, span["end"], nxt)
            last_bad = max((k for k, (_, meets) in enumerate(after) if not meets), default=-1)
            if last_bad == -1:
                recover = 0.0
            elif last_bad + 1 < len(after):
                recover = after[last_bad + 1][0] - span["end"]
        out.append(
            {
                "index": span["index"],
                "kind": span["kind"],
                "start": span["start"],
                "end": span["end"],
                "time_to_detect_s": detect,
                "time_to_recover_s": recover,
            }
        )
    return out


def steady_state(
    run_dir: Path,
    measure_from: float | None,
    slo: SloSpec | None,
    spans: list[dict[str, Any]] | None,
    verdicts: dict[str, dict[str, Any]] | None,
) -> dict[str, Any]:
    """The figures this module adds to ``summary.json`` (see the module's docstring)."""
    reqs = read_requests(run_dir / "requests.parquet", measure_from)
    if reqs is None or reqs.n == 0:
        return {}
    first = measure_from if measure_from is not None else min(reqs.intended)
    load_end = max(reqs.ends)
    whole = reqs.where(list(range(reqs.n)))
    within = goodput_ms(slo)
    out: dict[str, Any] = {
        "timeouts": whole.get("timeouts", 0),
        "goodput_rps": _goodput(reqs, list(range(reqs.n)), load_end - first, within),
        "retry_amplification": whole.get("retry_amplification"),
    }
    if slo is None or not spans:
        return out
    judged = set(slo.judge)
    rows = []
    for name, low, high in phases(spans, slo.recovery_s, load_end):
        keep = _in_phase(reqs, name, low, high)
        figures = reqs.where(keep)
        lo = low if low is not None else first
        hi = high if high is not None else load_end
        figures["throughput_rps"] = len(keep) / max(hi - lo, 1e-9)
        figures["goodput_rps"] = _goodput(reqs, keep, hi - lo, within)
        failed = _failing(figures, slo) if keep else list(slo.limits())
        rows.append(
            {
                "phase": name,
                "start": low,
                "end": high,
                **figures,
                "judged": name.split(":")[0] in judged,
                "pass": not failed,
                "failed": failed,
            }
        )
    out["slo_phases"] = rows
    out["faults"] = fault_times(reqs, slo, spans, load_end)
    detects = [f["time_to_detect_s"] for f in out["faults"] if f["time_to_detect_s"] is not None]
    recovers = [f["time_to_recover_s"] for f in out["faults"]]
    out["time_to_detect_s"] = max(detects) if detects else None
    out["time_to_recover_s"] = (
        None
        if any(
            r is None
            for r, f in zip(recovers, out["faults"], strict=True)
            if f["time_to_detect_s"] is not None
        )
        else max((r for r in recovers if r is not None), default=0.0)
    )
    judged_rows = [r for r in rows if r["judged"]]
    failed_rows = [r for r in judged_rows if not r["pass"]]
    out["slo_failed_phase"] = failed_rows[0]["phase"] if failed_rows else None
    out["slo_pass"] = not failed_rows
    if verdicts is not None:
        _add_during(verdicts, rows, "during" in judged)
    return out


def _add_during(
    verdicts: dict[str, dict[str, Any]], rows: list[dict[str, Any]], judged: bool
) -> None:
    """Each limit's worst figure over the ``during`` phases; judged when ``slo.judge`` says."""
    during = [r for r in rows if r["phase"].startswith("during:")]
    for name, verdict in verdicts.items():
        figure = "throughput_rps" if name == "min_throughput_rps" else name
        values: list[float] = [float(r[figure]) for r in during if r.get(figure) is not None]
        if name == "min_throughput_rps":
            verdict["during"] = min(values) if values else None
        else:
            verdict["during"] = max(values) if values else None
        if judged and "during" not in verdict["checked"]:
            verdict["checked"] = [*verdict["checked"], "during"]
            verdict["pass"] = bool(verdict["pass"]) and all(
                _meets(name, r.get(figure), verdict["limit"]) for r in during
            )
