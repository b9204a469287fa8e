"""Alerting rules tried on a run's own series with ``promtool test rules``.

A run's ``metrics.parquet`` holds every sample the runner scraped, about once
a second. :func:`promtool_series` lays them on a one-second grid (each point
the last sample at or before it) in the ``input_series`` notation of
Prometheus's rule unit tests, with the ``job`` label Prometheus would give each
source. :func:`try_rule` then runs ``promtool test rules`` on one alerting
rule over those series and says, at the times asked, whether it fired: so a
rule can be tried on what a run did before it pages anybody.

The rule counts as firing whenever its expression returns any series for its
``for`` time (the check wraps it in ``count(...)``, so that the alert has no
labels of its own to match).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalelab.analysis.load import Run
from scalelab.analysis.prometheus import parse_labels
from scalelab.errors import ScaleLabError

PROMTOOL_ENV = "SCALELAB_PROMTOOL"
ALERT = "RunAlert"
JOBS = {"service": "scalelab-service", "scheduler": "dask-scheduler", "worker": "dask-worker"}
"""The ``job`` label of each source, as scalelab's Prometheus configuration names them."""

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")


def promtool_binary() -> str | None:
    """The ``promtool`` executable: ``$SCALELAB_PROMTOOL``, else on PATH; None if neither."""
    named = os.environ.get(PROMTOOL_ENV)
    if named:
        return named if Path(named).is_file() else shutil.which(named)
    return shutil.which("promtool")


def duration_s(text: Any) -> float:
    """A Prometheus duration (``"0s"``, ``"1500ms"``, ``"2m"``) or a number, in seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0 or not math.isfinite(float(text)):
            raise ScaleLabError(f"for = {text!r}: give a duration of zero or more seconds")
        return float(text)
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ScaleLabError(f"for = {text!r}: give a duration such as '0s', '3s' or '1m'")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2)]
    return float(match.group(1)) * scale


def _series_name(metric: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return f"{metric}{{{inner}}}"


@dataclass
class Series:
    """A run's samples on a one-second grid: ``start`` (Unix s) is the grid's time 0."""

    start: float
    points: int
    series: list[dict[str, str]]

    def at(self, unix_time: float) -> float:
        """Seconds since the grid's start of a Unix time."""
        return unix_time - self.start


def promtool_series(
    run: Run, sources: Iterable[str] = ("service", "scheduler", "worker")
) -> Series:
    """The run's scraped samples as promtool ``input_series`` on a one-second grid.

    Each grid point holds the series' last sample at or before it (``_`` before
    its first); every series gets the ``job`` label of its source.
    """
    m = run.metrics
    m = m[m["source"].isin(list(sources))]
    if m.empty:
        raise ScaleLabError(f"{run.path}: metrics.parquet holds no samples to test a rule on")
    start = float(m["t"].min())
    points = int(math.floor(float(m["t"].max()) - start + 1e-6)) + 1
    grid = start + np.arange(points, dtype=float)
    out = []
    for (source, metric, labels_text), rows in m.groupby(["source", "metric", "labels"], sort=True):
        labels = parse_labels(str(labels_text))
        labels["job"] = JOBS.get(str(source), str(source))
        rows = rows.sort_values("t")
        t = rows["t"].to_numpy(dtype=float)
        v = rows["value"].to_numpy(dtype=float)
        idx = np.searchsorted(t, grid + 1e-6, side="right") - 1
        values = [
            "_" if i < 0 or not math.isfinite(v[i]) else repr(float(v[i])) for i in idx.tolist()
        ]
        out.append({"series": _series_name(str(metric), labels), "values": " ".join(values)})
    return Series(start, points, out)


@dataclass
class RuleTest:
    """What ``promtool test rules`` said of a rule at the times it was asked about."""

    passed: bool
    wrong_firing: list[float]
    wrong_silent: list[float]
    output: str

    def __bool__(self) -> bool:
        return self.passed


def rule_files(
    expr: str, for_s: float, series: Series, firing: Iterable[float], silent: Iterable[float]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rule file and the unit-test file: the rule fires at ``firing`` (seconds on the
    grid) and is silent at ``silent``."""
    rules = {
        "groups": [
            {
                "name": "scalelab",
                "interval": "1s",
                "rules": [{"alert": ALERT, "expr": f"count(({expr})) > 0", "for": f"{for_s:g}s"}],
            }
        ]
    }
    cases = [{"eval_time": f"{t:g}s", "alertname": ALERT, "exp_alerts": [{}]} for t in firing]
    cases += [{"eval_time": f"{t:g}s", "alertname": ALERT, "exp_alerts": []} for t in silent]
    cases.sort(key=lambda c: float(str(c["eval_time"])[:-1]))
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1s",
        "tests": [{"interval": "1s", "input_series": series.series, "alert_rule_test": cases}],
    }
    return rules, tests


def try_rule(
    expr: str,
    run: Run | Series,
    *,
    for_s: Any = 0,
    firing: Iterable[float] = (),
    silent: Iterable[float] = (),
    timeout_s: float = 60.0,
) -> RuleTest:
    """Run ``promtool test rules`` on an alerting rule over a run's series.

    ``firing`` and ``silent`` are Unix times at which the rule must be firing,
    and must not; each is checked at the grid point at or before it.
    """
    import yaml

    binary = promtool_binary()
    if binary is None:
        raise ScaleLabError(
            "promtool is not installed: install Prometheus (apt-get install prometheus) or "
            f"name the executable in ${PROMTOOL_ENV}"
        )
    if not isinstance(expr, str) or not expr.strip():
        raise ScaleLabError("the rule's expression is empty: give a PromQL expression")
    series = run if isinstance(run, Series) else promtool_series(run)
    on_grid = {
        "firing": sorted({max(0, math.floor(series.at(t) + 1e-6)) for t in firing}),
        "silent": sorted({max(0, math.floor(series.at(t) + 1e-6)) for t in silent}),
    }
    rules, tests = rule_files(expr, duration_s(for_s), series, on_grid["firing"], on_grid["silent"])
    with tempfile.TemporaryDirectory(prefix="scalelab-rule-") as tmp:
        Path(tmp, "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
        Path(tmp, "test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
        try:
            proc = subprocess.run(
                [binary, "test", "rules", "test.yml"],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired as exc:
            raise ScaleLabError(f"promtool test rules took over {timeout_s:g} s") from exc
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 and "alertname" not in output:
        raise ScaleLabError(f"promtool refused the rule: {_first_error(output)}")
    wrong = {float(x) for x in re.findall(r"time:\s*([0-9.]+)s", output)}
    return RuleTest(
        proc.returncode == 0,
        sorted(series.start + t for t in wrong if t in on_grid["silent"]),
        sorted(series.start + t for t in wrong if t in on_grid["firing"]),
        output,
    )


def _first_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    found = [line for line in lines if "err" in line.lower() or "parse" in line.lower()]
    return (found or lines or ["no output"])[-1][:500]


def firing_times(
    expr: str, run: Run | Series, for_s: Any = 0, times: Iterable[float] | None = None
) -> pd.DataFrame:
    """When the rule fired over the run (one row per grid second: ``t``, ``firing``).

    Every grid point is first expected silent: those promtool reports wrong are
    the ones at which the rule fired.
    """
    series = run if isinstance(run, Series) else promtool_series(run)
    grid = (
        [series.start + k for k in range(series.points)]
        if times is None
        else [float(t) for t in times]
    )
    result = try_rule(expr, series, for_s=for_s, silent=grid)
    fired = {math.floor(series.at(t) + 1e-6) for t in result.wrong_firing}
    return pd.DataFrame(
        {"t": grid, "firing": [math.floor(series.at(t) + 1e-6) in fired for t in grid]}
    )
