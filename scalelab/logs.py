"""``scalelab logs RUN_DIR``: from a request in a run to what happened to it, line by line.

A run's ``service.log`` holds the service's JSON lines (one per data-plane
request) and those of its workers (one per workload call), each with the
request's id, which ``requests.parquet`` also keeps (``request_id``). So a point
on a latency plot leads to the request's id, and the id to its lines::

    scalelab logs results/quickstart/latest/000-kind=direct-r0 --slowest 5
    scalelab logs results/quickstart/latest/000-kind=direct-r0 --request p0u3-17

Lines that are not JSON (a warning, a traceback) are left out.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.errors import ScaleLabError

LOG_FILE = "service.log"


def read_lines(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every JSON line of the run's ``service.log`` (its service and its workers), in order."""
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        raise ScaleLabError(
            f"{path}: no service log; give a run directory (results/<experiment>/<stamp>/<run>)"
        )
    lines = []
    with path.open(errors="replace") as f:
        for text in f:
            if not text.startswith("{"):
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                lines.append(record)
    return lines


def lines_of(run_dir: str | Path, request_id: str) -> list[dict[str, Any]]:
    """The log lines of one request, in time order."""
    found = [r for r in read_lines(run_dir) if r.get("request_id") == request_id]
    return sorted(found, key=lambda r: float(r.get("t") or 0.0))


@dataclass
class Slow:
    """One of the slowest requests: its row in ``requests.parquet`` and its log lines."""

    request_id: str
    latency_ms: float
    name: str
    status: int
    lines: list[dict[str, Any]]


def slowest(run_dir: str | Path, n: int = 5) -> list[Slow]:
    """The ``n`` slowest requests sent (latency from their intended start), with their lines."""
    import pyarrow.parquet as pq

    path = Path(run_dir) / "requests.parquet"
    if not path.is_file():
        raise ScaleLabError(f"{path}: no requests.parquet; the run recorded no requests")
    table = pq.read_table(path).to_pylist()
    sent = [r for r in table if r.get("method") != "DROPPED" and r.get("request_id")]
    sent.sort(key=lambda r: r.get("latency_intended_us") or r.get("latency_us") or 0, reverse=True)
    by_id: dict[str, list[dict[str, Any]]] = {}
    chosen = sent[:n]
    wanted = {r["request_id"] for r in chosen}
    for line in read_lines(run_dir):
        rid = line.get("request_id")
        if rid in wanted:
            by_id.setdefault(str(rid), []).append(line)
    return [
        Slow(
            str(r["request_id"]),
            float(r.get("latency_intended_us") or r.get("latency_us") or 0) / 1000.0,
            str(r.get("name") or ""),
            int(r.get("status") or 0),
            sorted(by_id.get(str(r["request_id"]), []), key=lambda x: float(x.get("t") or 0.0)),
        )
        for r in chosen
    ]


def format_line(line: dict[str, Any]) -> str:
    """A log line as text: its time, event, and the rest as ``key=value``."""
    from datetime import UTC, datetime

    t = line.get("t")
    when = (
        datetime.fromtimestamp(float(t), UTC).strftime("%H:%M:%S.%f")[:-3]
        if isinstance(t, int | float)
        else "?"
    )
    rest = " ".join(f"{k}={v}" for k, v in line.items() if k not in ("t", "event", "request_id"))
    return f"  {when}  {line.get('event', '?'):<8} {rest}"


def logs_from_args(args: argparse.Namespace) -> int:
    """Print a request's lines (``--request``), or the slowest requests' (``--slowest``)."""
    run_dir = Path(args.run_dir)
    if args.request:
        lines = lines_of(run_dir, args.request)
        if not lines:
            raise ScaleLabError(
                f"{run_dir / LOG_FILE}: no line with request_id {args.request!r}; "
                "take an id from requests.parquet's request_id column or from --slowest"
            )
        if args.json:
            for line in lines:
                print(json.dumps(line))
        else:
            print(f"request {args.request}")
            for line in lines:
                print(format_line(line))
        return 0
    if args.slowest is None or args.slowest < 1:
        raise ScaleLabError("scalelab logs: give --request ID or --slowest N (N at least 1)")
    for slow in slowest(run_dir, args.slowest):
        if args.json:
            print(
                json.dumps(
                    {
                        "request_id": slow.request_id,
                        "latency_ms": slow.latency_ms,
                        "lines": slow.lines,
                    }
                )
            )
            continue
        print(
            f"request {slow.request_id}: {slow.latency_ms:.1f} ms, {slow.name}, "
            f"status {slow.status}"
        )
        for line in slow.lines:
            print(format_line(line))
        if not slow.lines:
            print("  (no log line: logging was off, or the request never reached the service)")
    return 0
