"""Run an experiment: every point of its sweep, repeated, each run in its own directory.

For each run the runner starts the service (and its Dask cluster), waits for it
to be healthy, scrapes its metrics, drives it with Locust as a subprocess, then
fires the spec's fault schedule (:mod:`.faults`) while the load runs, then
ends every child and writes the run's files (docs/results-format.md). Children
are ended in every case: a normal end, an exception, Ctrl-C or SIGTERM, or a
child that dies. A run that fails or is interrupted still writes ``run.json``
with its status and keeps whatever it had measured. Locust is never imported here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalelab import procs
from scalelab.errors import RunError, ScaleLabError
from scalelab.experiment import metadata
from scalelab.experiment.events import EventLog
from scalelab.experiment.faults import FaultRunner
from scalelab.experiment.locust_command import STOP_TIMEOUT_S, locust_args, run_time_s
from scalelab.experiment.scraper import Scraper, write_metrics
from scalelab.experiment.spec import (
    ExperimentSpec,
    apply_overrides,
    expand,
    load_spec,
    parse_overrides,
    parse_spec,
    run_id,
)
from scalelab.experiment.summary import (
    FIGURES,
    OPTIONAL_FIGURES,
    compute_summary,
    first_intended_start,
)
from scalelab.fileio import write_json, write_text
from scalelab.monitoring.run import RunMonitoring, check_monitoring

if TYPE_CHECKING:
    import pandas as pd

LOAD_MARGIN_S = 60.0
"""Time allowed beyond Locust's own run time and stop timeout before it counts as hung."""


@dataclass
class RunResult:
    """One run: its id, directory, swept parameters, status and summary figures."""

    run_id: str
    path: Path
    params: dict[str, Any]
    status: str
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    repeat: int = 0


@dataclass
class ExperimentResult:
    """An experiment's directory and its runs; :meth:`table` gives one row per run."""

    path: Path
    name: str
    runs: list[RunResult]
    status: str
    report_path: Path | None = None
    sweep_keys: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One row per run: run_id, status, repeat, each swept parameter, summary figures."""
        return runs_frame(self.runs, self.sweep_keys)

    @property
    def ok(self) -> bool:
        """True when every run ended ``ok``."""
        return self.status == "ok"


class ExperimentInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the experiment; ``result`` holds what was written."""

    def __init__(self, result: ExperimentResult) -> None:
        super().__init__(f"experiment interrupted; results kept in {result.path}")
        self.result = result


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def runs_frame(runs: list[RunResult], sweep_keys: list[str]) -> pd.DataFrame:
    """The runs table as a pandas DataFrame (mixed-type parameter columns become text)."""
    import pandas as pd

    extra = [k for k in OPTIONAL_FIGURES if any(k in r.summary for r in runs)]
    rows = []
    for r in runs:
        row: dict[str, Any] = {"run_id": r.run_id, "status": r.status, "repeat": r.repeat}
        for key in sweep_keys:
            row[key] = r.params.get(key)
        for key in (*FIGURES, *extra):
            row[key] = r.summary.get(key)
        row["error"] = r.error or ""
        rows.append(row)
    columns = ["run_id", "status", "repeat", *sweep_keys, *FIGURES, *extra, "error"]
    frame = pd.DataFrame(rows, columns=columns)
    for key in sweep_keys:
        kinds = {type(v) for v in frame[key] if v is not None}
        numeric = kinds <= {int, float}
        if (len(kinds) > 1 and not numeric) or not kinds <= {int, float, str, bool}:
            frame[key] = frame[key].map(lambda v: None if v is None else str(v))
    for key in FIGURES:
        if key not in ("requests", "errors", "dropped"):
            frame[key] = pd.to_numeric(frame[key], errors="coerce").astype("float64")
    for key in ("requests", "errors", "dropped"):
        frame[key] = pd.to_numeric(frame[key], errors="coerce").astype("Int64")
    return frame


def _write_runs_table(exp_dir: Path, runs: list[RunResult], sweep_keys: list[str]) -> None:
    from scalelab.fileio import atomic_path

    frame = runs_frame(runs, sweep_keys)
    with atomic_path(exp_dir / "runs.parquet") as tmp:
        frame.to_parquet(tmp, index=False)
    with atomic_path(exp_dir / "runs.csv") as tmp:
        frame.to_csv(tmp, index=False)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold off Ctrl-C (and a SIGTERM turned into one) while children are being ended.

    Cleanup that is itself interrupted is how runs leak processes; a signal that
    arrives meanwhile is re-raised as KeyboardInterrupt once cleanup is done.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def _note(signum: int, frame: object) -> None:
        arrived.append(signum)

    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        current = signal.getsignal(sig)
        if sig == signal.SIGTERM and not callable(current):
            continue  # default SIGTERM: leave the process's own fate alone
        previous[sig] = signal.signal(sig, _note)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if arrived:
        raise KeyboardInterrupt(f"signal {arrived[0]}")


def _live_children() -> set[procs.Child]:
    with procs._lock:
        return set(procs._live)


def _experiment_dir(out: Path, name: str) -> Path:
    base = out / name
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = base / stamp
    n = 1
    while True:
        try:
            path.mkdir()
            break
        except FileExistsError:
            n += 1
            path = base / f"{stamp}-{n}"
    link = base / "latest"
    tmp = base / f".latest.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        tmp.symlink_to(path.name)
        os.replace(tmp, link)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def _resolve_spec(
    spec: ExperimentSpec | str | Path,
    overrides: list[str] | dict[str, Any] | None,
    scheduler: str | None,
) -> tuple[ExperimentSpec, str | None]:
    extra = parse_overrides(overrides)
    if scheduler:
        extra["service.cluster.scheduler"] = scheduler
    if isinstance(spec, ExperimentSpec):
        if not extra:
            return spec, None
        data = apply_overrides(spec.to_dict(), extra)
        resolved = parse_spec(data, ".", "spec (with overrides)")
        expand(resolved)
        return resolved, None
    return load_spec(spec, extra), str(Path(spec).resolve())


def run_experiment(
    spec: ExperimentSpec | str | Path,
    *,
    overrides: list[str] | dict[str, Any] | None = None,
    out: str | Path = "results",
    progress: bool = True,
    report: bool = True,
    scheduler: str | None = None,
) -> ExperimentResult:
    """Run every point of the spec's sweep ``repeats`` times and write the results under ``out``.

    ``overrides`` are ``"key=value"`` strings (or a mapping) applied to the spec;
    ``scheduler`` points every run's service at an existing Dask scheduler. The
    spec, with every sweep point, is validated before anything starts
    (:class:`~scalelab.errors.SpecError`). Ctrl-C ends the current run's children,
    writes what was measured, and raises :class:`ExperimentInterrupted` (a
    ``KeyboardInterrupt``).
    """
    resolved, spec_path = _resolve_spec(spec, overrides, scheduler)
    points = expand(resolved)
    check_monitoring([point for _, point in points])
    sweep_keys = list(resolved.sweep)
    plan: list[tuple[str, dict[str, Any], ExperimentSpec, int]] = []
    for repeat in range(resolved.repeats):
        for params, point in points:
            rid = run_id(len(plan), params, repeat)
            plan.append(
                (rid, params, point.model_copy(update={"seed": point.seed + repeat}), repeat)
            )

    exp_dir = _experiment_dir(Path(out), resolved.name)
    write_text(exp_dir / "spec.toml", resolved.to_toml())
    started = time.time()
    info: dict[str, Any] = {
        "name": resolved.name,
        "description": resolved.description,
        "spec_path": spec_path,
        "path": str(exp_dir.resolve()),
        "started_at": _iso(started),
        "ended_at": None,
        "status": "running",
        "sweep": resolved.sweep,
        "repeats": resolved.repeats,
        "runs": [rid for rid, *_ in plan],
    }
    write_json(exp_dir / "experiment.json", info)
    result = ExperimentResult(exp_dir, resolved.name, [], "running", sweep_keys=sweep_keys)

    from tqdm.auto import tqdm

    bar = tqdm(total=len(plan), desc=resolved.name, unit="run", disable=not progress)
    say = tqdm.write if progress else None
    interrupted = False
    try:
        for i, (rid, params, run_spec, repeat) in enumerate(plan):
            if i and resolved.cooldown_s:
                time.sleep(resolved.cooldown_s)
            bar.set_postfix_str(rid)
            run = RunResult(rid, exp_dir / rid, params, "running", repeat=repeat)
            result.runs.append(run)
            try:
                _run_one(run, run_spec, resolved.name, say)
            finally:
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        with _signals_deferred():
            if interrupted:
                result.status = "interrupted"
            elif any(r.status != "ok" for r in result.runs) or len(result.runs) < len(plan):
                result.status = "failed"
            else:
                result.status = "ok"
            _write_runs_table(exp_dir, result.runs, sweep_keys)
            info.update(
                ended_at=_iso(time.time()),
                status=result.status,
                runs=[r.run_id for r in result.runs],
                failed=[r.run_id for r in result.runs if r.status != "ok"],
            )
            # The report reads experiment.json: its final status goes there first.
            write_json(exp_dir / "experiment.json", info)
            if report and not interrupted:
                result.report_path = _write_report(exp_dir)
                info["report"] = str(result.report_path) if result.report_path else None
                write_json(exp_dir / "experiment.json", info)
    if interrupted:
        raise ExperimentInterrupted(result)
    return result


def _write_report(exp_dir: Path) -> Path | None:
    """The experiment's HTML report, when :mod:`scalelab.report` is available."""
    try:
        from scalelab.report import write_report
    except ImportError:
        return None
    try:
        return Path(write_report(exp_dir))
    except Exception as exc:  # a report must never lose the results
        warnings.warn(f"report of {exp_dir} not written: {exc}", stacklevel=2)
        return None


def _wait_for_load(locust: procs.Child, service: Any, deadline_s: float) -> int:
    """Wait for Locust to finish; fail fast when the service or Locust dies or Locust hangs."""
    end = time.monotonic() + deadline_s
    while True:
        code = locust.poll()
        if code is not None:
            return code
        if not service.child.alive():
            raise RunError(
                f"the service stopped during the run (exit code {service.child.poll()}); "
                f"see service.log:\n{service.child.log_tail(15)}"
            )
        if time.monotonic() > end:
            raise RunError(
                f"Locust did not finish within {deadline_s:.0f} s; see locust/locust.log"
            )
        time.sleep(0.2)


def _stop_locust(locust: procs.Child) -> None:
    """Ask Locust's main process to quit (so its recorder writes), then end its whole group."""
    if locust.alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(locust.pid, signal.SIGTERM)
        with contextlib.suppress(Exception):
            locust.wait(STOP_TIMEOUT_S + 10)
    locust.stop(deadline_s=5)


def _run_one(
    run: RunResult,
    spec: ExperimentSpec,
    experiment: str,
    say: Callable[[str], None] | None = None,
) -> None:
    """One run in ``run.path``; sets ``run.status``, ``run.summary`` and ``run.error``.

    ``run.json`` says ``running`` (with the Dask dashboard's address once the
    service is up) until the run ends; ``say`` prints that address. Re-raises
    KeyboardInterrupt after writing the interrupted run's files.
    """
    from scalelab.service.process import start_service

    run_dir = run.path
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "locust").mkdir(exist_ok=True)
    events = EventLog()
    started = time.time()
    before = _live_children()
    service: Any = None
    locust: procs.Child | None = None
    scraper: Scraper | None = None
    faults: FaultRunner | None = None
    health: dict[str, Any] = {}
    locust_code: int | None = None
    argv: list[str] = []
    interrupted = False
    status, error = "ok", None
    monitoring = RunMonitoring(
        spec.monitoring, run_dir, {"experiment": experiment, "run": run.run_id}
    )
    try:
        write_text(run_dir / "spec.toml", spec.to_toml())
        _write_running(run, spec, experiment, started)
        monitoring.prepare(events)
        events.phase("service_start")
        service = start_service(spec.service, log_path=run_dir / "service.log")
        health = dict(service.health())
        events.phase("service_ready", url=service.url, health=health)
        monitoring.start(service.url, health, events)
        _write_running(run, spec, experiment, started, service.url, health, monitoring)
        if say is not None:
            say(_running_line(run.run_id, service.url, health, monitoring))
        scraper = Scraper(
            service.url + "/metrics",
            health.get("scheduler_metrics"),
            interval_s=spec.monitoring.sample_interval_s,
        ).start()
        argv = locust_args(spec, service.url, run_dir)
        events.phase("load_start", argv=argv)
        locust = procs.Child(
            argv,
            name="locust",
            log_path=run_dir / "locust" / "console.log",
            env={"PYTHONUNBUFFERED": "1"},
        )
        if spec.faults:
            faults = FaultRunner(
                service.url, spec.faults, events, headers=service.admin_headers()
            ).start()
        deadline = run_time_s(spec) + STOP_TIMEOUT_S + LOAD_MARGIN_S
        locust_code = _wait_for_load(locust, service, deadline)
        if faults is not None:
            faults.stop()
        events.phase("load_stop", exit_code=locust_code)
        if locust_code != 0:
            raise RunError(
                f"Locust exited with code {locust_code}; see locust/console.log:\n"
                f"{locust.log_tail(15)}"
            )
        if not service.child.alive():
            raise RunError(
                f"the service stopped during the run (exit code {service.child.poll()}); "
                f"see service.log:\n{service.child.log_tail(15)}"
            )
        missing = [n for n in ("requests.parquet", "latency.hdr") if not (run_dir / n).is_file()]
        if missing:
            raise RunError(
                f"Locust wrote no {' or '.join(missing)}; is {spec.locustfile} using "
                "scalelab.loadgen's recorder? See locust/console.log"
            )
        if faults is not None and faults.problems():
            raise RunError(
                "the fault schedule did not run as specified: " + "; ".join(faults.problems())
            )
    except KeyboardInterrupt:
        interrupted = True
        status, error = "interrupted", "interrupted by the user (Ctrl-C or SIGTERM)"
    except ScaleLabError as exc:
        status, error = "failed", str(exc)
    except Exception as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        with _signals_deferred():
            _finish_run(
                run,
                spec,
                experiment,
                events,
                started,
                service,
                locust,
                scraper,
                before,
                status,
                error,
                health,
                locust_code,
                faults,
                monitoring,
            )
    if interrupted:
        raise KeyboardInterrupt


def _write_running(
    run: RunResult,
    spec: ExperimentSpec,
    experiment: str,
    started: float,
    service_url: str | None = None,
    health: dict[str, Any] | None = None,
    monitoring: RunMonitoring | None = None,
) -> None:
    """``run.json`` while the run goes on: status ``running`` and where to watch it."""
    health = health or {}
    write_json(
        run.path / "run.json",
        {
            "run_id": run.run_id,
            "experiment": experiment,
            "status": "running",
            "error": None,
            "params": run.params,
            "repeat": run.repeat,
            "seed": spec.seed,
            "started_at": _iso(started),
            "ended_at": None,
            "service_url": service_url,
            "scheduler": health.get("scheduler"),
            "dashboard_link": health.get("dashboard"),
            "workers": health.get("workers"),
            "monitoring": monitoring.running_info() if monitoring is not None else None,
            "pid": os.getpid(),
        },
    )


def _running_line(run_id: str, url: str, health: dict[str, Any], monitoring: RunMonitoring) -> str:
    """The line ``scalelab run`` prints as a run starts: where to watch it live."""
    parts = [f"{run_id}: service {url}", f"Dask dashboard {health.get('dashboard') or 'none'}"]
    prometheus = monitoring.running_info().get("prometheus")
    if prometheus:
        parts.append(f"Prometheus {prometheus['url']}")
    return ", ".join(parts)


def _first_request(run_dir: Path) -> float | None:
    """The earliest intended start in ``requests.parquet``, if any."""
    path = run_dir / "requests.parquet"
    if not path.is_file():
        return None
    try:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        column = pq.read_table(path, columns=["intended_start"]).column("intended_start")
        value = pc.min(column).as_py()
    except Exception:  # a damaged file must not stop run.json from being written
        return None
    return float(value) if value is not None else None


def _finish_run(
    run: RunResult,
    spec: ExperimentSpec,
    experiment: str,
    events: EventLog,
    started: float,
    service: Any,
    locust: procs.Child | None,
    scraper: Scraper | None,
    before: set[procs.Child],
    status: str,
    error: str | None,
    health: dict[str, Any],
    locust_code: int | None,
    faults: FaultRunner | None = None,
    monitoring: RunMonitoring | None = None,
) -> None:
    """End every child of the run, then write its files whatever its status."""
    run_dir = run.path
    problems: list[str] = []
    if faults is not None:
        faults.stop()
    if locust is not None:
        if "load_stop" not in events.names():
            _stop_locust(locust)
            events.phase("load_stop", stopped=True, exit_code=locust.poll())
        else:
            locust.stop(deadline_s=5)
    if scraper is not None:
        scraper.stop()
    # Locust takes seconds to start, so the warm-up counts from the first request.
    first = first_intended_start(run_dir / "requests.parquet")
    measure_from = first + spec.warmup_s if first is not None else None
    if monitoring is not None:
        # Dask's report needs the scheduler, so it comes before the service stops.
        window = measure_from if measure_from is not None else events.time_of("load_start")
        monitoring.finish(window, f"scalelab run {experiment}/{run.run_id}", events)
        problems.extend(monitoring.problems)
    if service is not None:
        events.phase("service_stop")
        try:
            service.stop(deadline_s=10)
        except Exception as exc:
            problems.append(f"stopping the service: {exc}")
    # A child started but not handed back (start_service interrupted) is ended too.
    for child in _live_children() - before:
        child.stop(deadline_s=5)

    if spec.warmup_s <= 0:
        measure_from = None
    elif measure_from is not None:
        events.phase("measure_start", at=measure_from, warmup_s=spec.warmup_s)
    try:
        write_metrics(run_dir / "metrics.parquet", scraper.snapshot() if scraper else [])
    except Exception as exc:
        problems.append(f"writing metrics.parquet: {exc}")
    try:
        events.write(run_dir / "events.parquet")
    except Exception as exc:
        problems.append(f"writing events.parquet: {exc}")
    try:
        summary = compute_summary(
            run_dir,
            run_id=run.run_id,
            params=run.params,
            status=status,
            measure_from=measure_from,
            slo=spec.slo,
            fault_window=faults.window() if faults is not None else None,
            fault_spans=faults.spans() if faults is not None else None,
        )
        write_json(run_dir / "summary.json", summary)
    except Exception as exc:
        summary = {"run_id": run.run_id, "status": status, "params": run.params}
        problems.append(f"computing summary.json: {exc}")
        if status == "ok":
            status, error = "failed", f"summary: {exc}"
    ended = time.time()
    run.status, run.error, run.summary = status, error, summary
    record = {
        "run_id": run.run_id,
        "experiment": experiment,
        "status": status,
        "error": error,
        "params": run.params,
        "repeat": run.repeat,
        "seed": spec.seed,
        "started_at": _iso(started),
        "ended_at": _iso(ended),
        "duration_s": ended - started,
        "service_url": getattr(service, "url", None),
        "scheduler": health.get("scheduler"),
        "dashboard_link": health.get("dashboard"),
        "workers": health.get("workers"),
        "locust_exit_code": locust_code if locust is None else locust.poll(),
        "faults": faults.report(_first_request(run_dir)) if faults is not None else None,
        "monitoring": monitoring.record() if monitoring is not None else None,
        "problems": problems,
        "versions": metadata.versions(),
        "git_commit": metadata.git_commit(),
        "host": metadata.host(),
        "python": sys.executable,
    }
    write_json(run_dir / "run.json", record)
