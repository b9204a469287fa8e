"""``scalelab prometheus RUN_DIR``: serve a finished run's Prometheus data again, until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from scalelab.monitoring.prometheus import open_data
from scalelab.procs import terminate_on_sigterm


def _window(run_dir: Path) -> tuple[float, float] | None:
    """The run's Prometheus window (start, stop) from run.json, if it says."""
    try:
        record = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return None
    prom: Any = (record.get("monitoring") or {}).get("prometheus") or {}
    start, stop = prom.get("started"), prom.get("stopped")
    if isinstance(start, int | float) and isinstance(stop, int | float):
        return float(start), float(stop)
    return None


def graph_url(base: str, expr: str, window: tuple[float, float] | None) -> str:
    """A link to Prometheus's graph page showing ``expr`` over the run's window."""
    params = {"g0.expr": expr, "g0.tab": "0"}
    if window is not None:
        start, stop = window
        params["g0.range_input"] = f"{max(1, math.ceil(stop - start))}s"
        end = datetime.fromtimestamp(stop, UTC).strftime("%Y-%m-%d %H:%M:%S")
        params["g0.end_input"] = end
    return f"{base}/graph?{urlencode(params)}"


def prometheus_from_args(args: argparse.Namespace) -> int:
    """Start Prometheus on the run's data, print where, and serve until Ctrl-C (or SIGTERM)."""
    run_dir = Path(args.path)
    server = open_data(run_dir, port=args.port)
    window = _window(run_dir)
    with terminate_on_sigterm(), server:
        print(f"Prometheus on {run_dir}: {server.url}  (Ctrl-C stops it)")
        if window is not None:
            start, stop = (datetime.fromtimestamp(t, UTC).isoformat() for t in window)
            print(f"the run's data: {start} to {stop}")
        expr = "sum by (job) (rate(process_cpu_seconds_total[5s]))"
        print(f"CPU of each process: {graph_url(server.url, expr, window)}")
        try:
            while server.alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0
