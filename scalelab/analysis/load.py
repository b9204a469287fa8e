"""Load run and experiment directories (docs/results-format.md) into Python objects.

A :class:`Run` reads its small JSON/TOML files at once and its large files
(requests, metrics, events, histograms) only when first asked for, so that
loading an experiment of many runs to look at its table stays quick. A file a
failed or interrupted run never wrote gives an empty frame, not an error.
"""

from __future__ import annotations

import contextlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

from scalelab import hdr
from scalelab.analysis.definitions import sent_mask
from scalelab.errors import ScaleLabError

#: Summary figures copied into an experiment's table, in this order.
SUMMARY_COLUMNS = (
    "requests",
    "errors",
    "error_rate",
    "throughput_rps",
    "ok_throughput_rps",
    "mean_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "actual_p50_ms",
    "actual_p99_ms",
    "duration_s",
    "dropped",
)

REQUEST_COLUMNS: dict[str, str] = {
    "intended_start": "float64",
    "start": "float64",
    "latency_us": "int64",
    "latency_intended_us": "int64",
    "status": "int32",
    "ok": "bool",
    "name": "object",
    "method": "object",
    "bytes": "int64",
    "error": "object",
    "worker": "object",
    "batch_size": "int32",
    "cache": "object",
    "partition": "object",
    "attempts": "int32",
    "process": "int32",
    "request_id": "object",
}
METRIC_COLUMNS: dict[str, str] = {
    "t": "float64",
    "source": "object",
    "metric": "object",
    "labels": "object",
    "value": "float64",
}
EVENT_COLUMNS: dict[str, str] = {
    "t": "float64",
    "kind": "object",
    "name": "object",
    "detail": "object",
}

_REPEAT = re.compile(r"-r(\d+)$")


def histogram_of(latencies_us: np.ndarray) -> HdrHistogram:
    """An HdrHistogram (µs, 3 digits) of many latencies, recorded once per distinct value."""
    hist = hdr.new_histogram()
    values, counts = np.unique(np.asarray(latencies_us, dtype=np.int64), return_counts=True)
    for v, c in zip(values.tolist(), counts.tolist(), strict=True):
        hist.record_value(hdr.clamp_us(v), c)
    return hist


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def _read_parquet(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    """A parquet file as a frame; an empty frame with ``columns`` when it is absent."""
    if not path.is_file():
        return _empty(columns)
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # a truncated file from a crashed writer
        raise ScaleLabError(
            f"{path}: cannot read it as parquet ({exc}); delete or rewrite it"
        ) from exc
    for col, dtype in columns.items():
        if col not in frame.columns:
            frame[col] = pd.Series(dtype=dtype, index=frame.index)
    return frame


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ScaleLabError(f"{path}: not valid JSON ({exc})") from exc
    return data if isinstance(data, dict) else {}


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ScaleLabError(f"{path}: not valid TOML ({exc})") from exc


def flatten_params(params: Any, prefix: str = "") -> dict[str, Any]:
    """Nested parameter tables as one level of dotted keys (``{"a": {"b": 1}}`` -> ``a.b``)."""
    out: dict[str, Any] = {}
    if not isinstance(params, dict):
        return out
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_params(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


def is_run_dir(path: str | Path) -> bool:
    """True when ``path`` is one run's directory (it holds ``run.json`` or ``summary.json``)."""
    p = Path(path)
    return p.is_dir() and ((p / "run.json").is_file() or (p / "summary.json").is_file())


def _run_dirs(path: Path) -> list[Path]:
    return sorted(c for c in path.iterdir() if c.name != "latest" and is_run_dir(c))


def is_experiment_dir(path: str | Path) -> bool:
    """True when ``path`` is one experiment invocation (``results/<experiment>/<stamp>``).

    It holds ``experiment.json`` or ``runs.parquet``, or at least one run directory.
    """
    p = Path(path)
    if not p.is_dir() or is_run_dir(p):
        return False
    if (p / "experiment.json").is_file() or (p / "runs.parquet").is_file():
        return True
    return bool(_run_dirs(p))


def resolve_experiment_dir(path: str | Path) -> Path | None:
    """The experiment directory meant by ``path``, or None.

    ``path`` may be the experiment directory itself, its ``latest`` link, or the
    ``results/<experiment>`` folder (whose ``latest`` link, else newest stamp, is taken).
    """
    p = Path(path)
    if is_experiment_dir(p):
        return p.resolve()
    if not p.is_dir():
        return None
    latest = p / "latest"
    if latest.exists() and is_experiment_dir(latest):
        return latest.resolve()
    stamps = sorted(c for c in p.iterdir() if c.name != "latest" and is_experiment_dir(c))
    return stamps[-1].resolve() if stamps else None


@dataclass(eq=False)
class Run:
    """One run directory: its status, parameters and figures, and its measurements on demand."""

    path: Path
    run_id: str
    status: str
    params: dict[str, Any]
    summary: dict[str, Any]
    info: dict[str, Any] = field(repr=False)
    spec: dict[str, Any] = field(repr=False)

    @property
    def repeat(self) -> int:
        """The repeat index from the run id (``...-r2`` -> 2); 0 when absent."""
        m = _REPEAT.search(self.run_id)
        return int(m.group(1)) if m else 0

    @cached_property
    def requests(self) -> pd.DataFrame:
        """``requests.parquet``: one row per request (empty when the run wrote none)."""
        return _read_parquet(self.path / "requests.parquet", REQUEST_COLUMNS)

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """``metrics.parquet``: server and Dask samples in long format (empty when absent)."""
        return _read_parquet(self.path / "metrics.parquet", METRIC_COLUMNS)

    @cached_property
    def events(self) -> pd.DataFrame:
        """``events.parquet``: phases, faults and notes (empty when absent)."""
        return _read_parquet(self.path / "events.parquet", EVENT_COLUMNS)

    @cached_property
    def histograms(self) -> dict[str, HdrHistogram]:
        """``latency.hdr`` by tag (``intended``, ``actual``); empty when the run wrote none."""
        p = self.path / "latency.hdr"
        if not p.is_file():
            return {}
        try:
            return hdr.read_log(p)
        except (ValueError, OSError) as exc:
            raise ScaleLabError(f"{p}: cannot read the HDR log ({exc})") from exc

    def histogram(self, tag: str = "intended") -> HdrHistogram:
        """The histogram of ``tag`` as ``latency.hdr`` holds it; empty when the run has none."""
        return self.histograms.get(tag) or hdr.new_histogram()

    @property
    def warmup_s(self) -> float:
        """The spec's warm-up: load sent before the measured time."""
        try:
            return float(self.spec.get("warmup_s") or 0.0)
        except (TypeError, ValueError):
            return 0.0

    @property
    def measure_from(self) -> float | None:
        """When the measured time began (first request + warm-up), or None without a warm-up.

        The runner records it as the ``measure_start`` event; for a run without
        that event it is computed the same way from the requests.
        """
        if self.warmup_s <= 0:
            return None
        recorded = self.event_time("measure_start")
        if recorded is not None:
            return recorded
        if not len(self.requests):
            return None
        return float(self.requests["intended_start"].min()) + self.warmup_s

    @cached_property
    def sent(self) -> np.ndarray:
        """Per row of :attr:`requests`: True for a request sent, False for an open-loop drop."""
        return sent_mask(self.requests["method"])

    @cached_property
    def measured(self) -> np.ndarray:
        """Per row of :attr:`requests`: True when it was meant to start after the warm-up."""
        t = self.measure_from
        if t is None:
            return np.ones(len(self.requests), dtype=bool)
        return np.asarray(self.requests["intended_start"].to_numpy() >= t, dtype=bool)

    @property
    def sent_requests(self) -> pd.DataFrame:
        """The requests sent, warm-up included (without the open loop's drops)."""
        sent = self.sent
        return self.requests if sent.all() else self.requests.loc[sent]

    @property
    def measured_requests(self) -> pd.DataFrame:
        """The requests of summary.json: sent, and meant to start after the warm-up."""
        keep = self.sent & self.measured
        return self.requests if keep.all() else self.requests.loc[keep]

    @property
    def dropped_requests(self) -> pd.DataFrame:
        """The arrivals of the measured time that the open loop dropped (never sent)."""
        return self.requests.loc[~self.sent & self.measured]

    def measured_histogram(self, tag: str = "intended") -> HdrHistogram:
        """The histogram that summary.json's figures come from.

        Without a warm-up that is ``latency.hdr`` itself (which holds the requests
        sent); with one, it is rebuilt (same precision) from the requests sent and
        meant to start after the warm-up.
        """
        if self.measure_from is None or self.requests.empty:
            return self.histogram(tag)
        cache = self.__dict__.setdefault("_measured_hists", {})
        if tag not in cache:
            col = "latency_intended_us" if tag == "intended" else "latency_us"
            cache[tag] = histogram_of(self.measured_requests[col].to_numpy())
        return cache[tag]

    def event_time(self, name: str) -> float | None:
        """The time of the first event called ``name`` (for example ``load_start``), or None."""
        ev = self.events
        if ev.empty:
            return None
        hit = ev.loc[ev["name"] == name, "t"]
        return float(hit.min()) if len(hit) else None

    @property
    def label(self) -> str:
        """A short label: the parameters as ``k=v`` (last part of each key), else the run id."""
        if not self.params:
            return self.run_id
        parts = [f"{k.rsplit('.', 1)[-1]}={v}" for k, v in self.params.items()]
        if _REPEAT.search(self.run_id):
            parts.append(f"r{self.repeat}")
        return " ".join(parts)


def load_run(path: str | Path) -> Run:
    """Load one run directory; its large files are read when first used."""
    p = Path(path)
    if not is_run_dir(p):
        raise ScaleLabError(
            f"{p}: not a run directory; expected a directory holding run.json "
            "(results/<experiment>/<stamp>/<run-id>)"
        )
    info = _read_json(p / "run.json")
    summary = _read_json(p / "summary.json")
    params = flatten_params(info.get("params") or summary.get("params") or {})
    status = str(info.get("status") or summary.get("status") or "unknown")
    run_id = str(info.get("run_id") or summary.get("run_id") or p.name)
    return Run(
        path=p,
        run_id=run_id,
        status=status,
        params=params,
        summary=summary,
        info=info,
        spec=_read_toml(p / "spec.toml"),
    )


@dataclass(eq=False)
class Experiment:
    """One experiment invocation: its runs and a table with one row per run."""

    path: Path
    runs: list[Run]
    info: dict[str, Any] = field(repr=False)
    table: pd.DataFrame = field(repr=False)

    @property
    def name(self) -> str:
        """The experiment's name (from experiment.json, else the parent folder's name)."""
        return str(self.info.get("name") or self.path.parent.name)

    @property
    def param_names(self) -> list[str]:
        """Every parameter name that any run carries, in first-seen order."""
        names: dict[str, None] = {}
        for run in self.runs:
            names.update(dict.fromkeys(run.params))
        return list(names)

    @property
    def swept(self) -> list[str]:
        """The parameters that take more than one value across the runs."""
        if self.table.empty:
            return []
        return [
            n
            for n in self.param_names
            if n in self.table.columns and self.table[n].astype(str).nunique() > 1
        ]

    def run(self, run_id: str) -> Run:
        """The run called ``run_id``."""
        for r in self.runs:
            if r.run_id == run_id:
                return r
        raise ScaleLabError(
            f"{self.path}: no run {run_id!r}; runs are {', '.join(r.run_id for r in self.runs)}"
        )


def _table(runs: list[Run]) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for run in runs:
        row: dict[str, Any] = {"run_id": run.run_id, "status": run.status, "repeat": run.repeat}
        row.update(run.params)
        for key in SUMMARY_COLUMNS:
            row[key] = run.summary.get(key, np.nan)
        for key, value in run.summary.items():
            if key not in row and isinstance(value, int | float) and not isinstance(value, bool):
                row[key] = value
        row["error"] = str(run.info.get("error") or "")
        rows.append(row)
    table = pd.DataFrame(rows)
    for key in SUMMARY_COLUMNS:
        if key in table.columns:
            with contextlib.suppress(ValueError, TypeError):
                table[key] = pd.to_numeric(table[key])
    return table


def load_experiment(path: str | Path) -> Experiment:
    """Load an experiment: its directory, its ``latest`` link, or ``results/<experiment>``."""
    p = Path(path)
    exp_dir = resolve_experiment_dir(p)
    if exp_dir is None:
        raise ScaleLabError(
            f"{p}: not an experiment directory; expected results/<experiment>/<stamp> "
            "(holding experiment.json and one directory per run), its 'latest' link, "
            "or results/<experiment>"
        )
    runs = [load_run(d) for d in _run_dirs(exp_dir)]
    info = _read_json(exp_dir / "experiment.json")
    order = info.get("run_ids") or info.get("runs")
    if isinstance(order, list) and all(isinstance(x, str) for x in order):
        rank = {rid: i for i, rid in enumerate(order)}
        runs.sort(key=lambda r: (rank.get(r.run_id, len(rank)), r.run_id))
    if runs:
        table = _table(runs)
    elif (exp_dir / "runs.parquet").is_file():
        table = pd.read_parquet(exp_dir / "runs.parquet")
    else:
        table = pd.DataFrame({"run_id": pd.Series(dtype=object)})
    return Experiment(path=exp_dir, runs=runs, info=info, table=table)
