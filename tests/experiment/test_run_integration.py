"""Experiments end to end: a real service on a real LocalCluster, real Locust, real files.

Each test keeps its runs to a few seconds with a one-worker cluster. The
robustness tests interrupt or break a run half-way and then look for anything
left behind: every descendant seen during the run must be gone, and no process
may still name the run's results directory or the service's port.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import tomllib
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pytest
from browser import chromium_binary, inspect_page

from scalelab import procs
from scalelab.cli import main
from scalelab.errors import SpecError
from scalelab.experiment.runner import ExperimentResult, run_experiment
from scalelab.experiment.scraper import parse_metrics
from scalelab.experiment.spec import load_spec
from scalelab.logs import lines_of
from scalelab.procs import Child, wait_until
from scalelab.service.process import LISTENING

from .leaks import cmdline, descendants, mentioning, still_running

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
SMALL = ["service.cluster.workers=1", "cooldown_s=0.5", "load.users=8", "load.spawn_rate=8"]
ONE_POINT = ['sweep.service.executor.kind=["direct"]']
RUN_FILES = (
    "spec.toml",
    "run.json",
    "requests.parquet",
    "latency.hdr",
    "metrics.parquet",
    "events.parquet",
    "summary.json",
    "service.log",
    "locust/stats_stats.csv",
    "locust/locust.log",
    "locust/report.html",
)

pytestmark = pytest.mark.integration


def _run_dirs(exp: Path) -> list[Path]:
    return sorted(p for p in exp.iterdir() if p.is_dir())


def _run_time(log: Path) -> tuple[float, float, float]:
    """When Locust set its run time, that run time (s), and when it said the time was up."""
    from datetime import datetime

    def at(line: str) -> float:
        return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()

    lines = log.read_text().splitlines()
    set_line = next(x for x in lines if "Run time limit set to" in x)
    end_line = next(x for x in lines if "run-time limit reached" in x)
    seconds = float(set_line.split("Run time limit set to ")[1].split()[0])
    return at(set_line), seconds, at(end_line)


def test_bad_spec_starts_nothing(tmp_path: Path) -> None:
    before = {p.pid for p in descendants(os.getpid())}
    with pytest.raises(SpecError, match="load.userz"):
        run_experiment(QUICKSTART, overrides=["load.userz=3"], out=tmp_path, progress=False)
    assert not (tmp_path / "quickstart").exists()
    assert {p.pid for p in descendants(os.getpid())} <= before


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> ExperimentResult:
    """The quickstart, shortened: two of its runs (direct, actor) and their report."""
    out = tmp_path_factory.mktemp("quickstart") / "results"
    two = 'sweep.service.executor.kind=["direct", "actor"]'  # of the quickstart's three
    with procs._lock:
        before = set(procs._live)
    result = run_experiment(
        QUICKSTART,
        overrides=["duration_s=3", *SMALL, two, "monitoring.sample_interval_s=0.5"],
        out=out,
        progress=False,
    )
    with procs._lock:
        left = [c.name for c in procs._live - before if c.alive()]
    assert not left, f"children left running: {left}"
    return result


def test_sweep_writes_the_full_layout(
    quickstart: ExperimentResult, capsys: pytest.CaptureFixture[str]
) -> None:
    result = quickstart
    assert result.status == "ok", [r.error for r in result.runs]
    exp = result.path
    assert exp.parent.name == "quickstart" and exp.parent.parent.name == "results"
    assert (exp.parent / "latest").resolve() == exp.resolve()
    info = json.loads((exp / "experiment.json").read_text())
    assert info["status"] == "ok" and info["runs"] == ["000-kind=direct-r0", "001-kind=actor-r0"]
    assert [p.name for p in _run_dirs(exp)] == info["runs"]

    table = pd.read_parquet(exp / "runs.parquet")
    assert list(table["service.executor.kind"]) == ["direct", "actor"]
    assert list(table["status"]) == ["ok", "ok"]
    assert (table["requests"] > 0).all() and (table["p99_ms"] >= table["p50_ms"]).all()
    assert len(pd.read_csv(exp / "runs.csv")) == 2
    pd.testing.assert_frame_equal(result.table(), table, check_dtype=False)

    for run, kind in zip(result.runs, ("direct", "actor"), strict=True):
        for name in RUN_FILES:
            assert (run.path / name).is_file(), f"{run.run_id}: {name} missing"
        record = json.loads((run.path / "run.json").read_text())
        assert record["status"] == "ok" and record["params"] == {"service.executor.kind": kind}
        set_at, ran_s, ended_at = _run_time(run.path / "locust" / "locust.log")
        assert ended_at - set_at >= ran_s - 0.1, "Locust ended the run before its --run-time"
        assert record["versions"]["locust"] and record["host"]["cpus"]
        assert record["scheduler"].startswith("tcp://")

        requests = pd.read_parquet(run.path / "requests.parquet")
        summary = json.loads((run.path / "summary.json").read_text())
        assert summary["requests"] == len(requests) == run.summary["requests"] > 0
        assert summary["errors"] == int((~requests["ok"]).sum())
        assert 0 < summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"]
        assert 0 < summary["duration_s"] <= 3 + 2

        events = pd.read_parquet(run.path / "events.parquet")
        phases = list(events.loc[events["kind"] == "phase", "name"])
        assert phases == [
            "service_start",
            "service_ready",
            "load_start",
            "load_stop",
            "service_stop",
        ]
        assert events["t"].is_monotonic_increasing

        metrics = pd.read_parquet(run.path / "metrics.parquet")
        assert {"service", "scheduler"} <= set(metrics["source"])
        assert "scalelab_requests_total" in set(metrics["metric"])
        t = events.set_index("name")["t"]
        assert metrics["t"].between(t["service_ready"] - 1, t["service_stop"] + 1).all()
        # Scraped every 0.5 s (monitoring.sample_interval_s) through a 3 s load at least.
        assert metrics.loc[metrics["source"] == "service", "t"].nunique() >= 6

        # The sweep really reached the service: Dask tasks only under the direct executor.
        submitted = metrics.loc[metrics["metric"] == "scalelab_dask_tasks_submitted_total"]
        tasks = float(submitted["value"].max())
        assert tasks >= summary["requests"] if kind == "direct" else tasks == 0
        assert set(requests["batch_size"]) == {1}

        # Every request has an id, and its id leads to its lines in the service's log: the
        # request's own, and the task's from the worker, whichever executor ran it.
        ids = requests["request_id"]
        assert (ids.str.len() > 0).all() and ids.is_unique
        middle = str(ids.iloc[len(ids) // 2])
        events = [line["event"] for line in lines_of(run.path, middle)]
        assert sorted(events) == ["request", "task"], events
        assert main(["logs", str(run.path), "--slowest", "2"]) == 0
        shown = capsys.readouterr().out
        assert shown.count("request p") == 2 and "task" in shown

        run_spec = tomllib.loads((run.path / "spec.toml").read_text())
        assert run_spec["service"]["executor"]["kind"] == kind and run_spec["sweep"] == {}
        assert load_spec(run.path / "spec.toml").service.cluster.workers == 1
    assert result.report_path is not None and result.report_path.is_file()


def test_quickstart_report_reads_well_in_chromium(
    quickstart: ExperimentResult, tmp_path: Path
) -> None:
    assert quickstart.report_path is not None
    text = quickstart.report_path.read_text()
    # experiment.json's final status is written before the report reads it
    assert 'status: <span class="badge ok">ok</span>' in text and '"badge running"' not in text
    if chromium_binary() is None:
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    page = inspect_page(quickstart.report_path.resolve().as_uri(), tmp_path / "quickstart.png")
    assert page.problems == []  # no console error, no broken image, nothing wider than the page
    # the comparison, the latency percentiles, and a timeline per run
    assert page.images == 4 and page.title == "scalelab experiment quickstart"
    assert page.screenshot is not None and page.screenshot.stat().st_size > 50_000


def _service_port(pid: int) -> int | None:
    """The port of the ``scalelab serve`` descendant of ``pid``: from its command line, or,
    when it was told to bind port 0, from the "listening on" line of its log (its stdout)."""
    for proc in descendants(pid):
        args = cmdline(proc).split()
        if "serve" in args and "--port" in args:
            port = int(args[args.index("--port") + 1])
            if port:
                return port
            try:
                log = Path(os.readlink(f"/proc/{proc.pid}/fd/1")).read_text(errors="replace")
            except OSError:
                return None
            found = LISTENING.search(log)
            return int(found.group(1).rsplit(":", 1)[1]) if found else None
    return None


def _served_requests(port: int) -> float:
    """Requests the service has answered so far (its Prometheus counter)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    rows = parse_metrics(text, 0.0, "service")
    return sum(r[4] for r in rows if r[2] == "scalelab_requests_total")


def _wait_for(pid: int, needle: str, timeout_s: float) -> bool:
    return wait_until(
        lambda: any(needle in cmdline(p) for p in descendants(pid)), timeout_s, interval_s=0.2
    )


def test_ctrl_c_keeps_what_was_measured_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = [sys.executable, "-m", "scalelab", "run", str(QUICKSTART), "--out", str(out)]
    for item in ["duration_s=30", *SMALL, *ONE_POINT]:
        args += ["--set", item]
    args += ["--quiet", "--no-report"]
    child = Child(args, name="scalelab run", log_path=tmp_path / "run.log")
    try:
        assert _wait_for(child.pid, "-m locust", 90), child.log_tail()
        port = _service_port(child.pid)
        assert port is not None
        # Interrupt only once the load is really flowing, so there is something to keep.
        assert wait_until(lambda: _served_requests(port) >= 20, 60, interval_s=0.3)
        time.sleep(1.0)
        seen = descendants(child.pid)
        assert any("scalelab serve" in cmdline(p) for p in seen)
        os.kill(child.pid, signal.SIGINT)
        code = child.wait(60)
    finally:
        child.stop(5)
    assert code == 130, child.log_tail()

    exp = (out / "quickstart" / "latest").resolve()
    (run_dir,) = _run_dirs(exp)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "interrupted"
    for name in RUN_FILES[:-1]:  # Locust writes its HTML report only at a normal end
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["requests"] > 0
    assert len(pd.read_parquet(run_dir / "metrics.parquet")) > 0
    phases = list(pd.read_parquet(run_dir / "events.parquet")["name"])
    assert phases[:3] == ["service_start", "service_ready", "load_start"]
    assert "service_stop" in phases
    assert json.loads((exp / "experiment.json").read_text())["status"] == "interrupted"
    assert pd.read_parquet(exp / "runs.parquet")["status"].tolist() == ["interrupted"]

    assert record["service_url"].endswith(f":{port}")
    assert still_running(seen) == []
    assert mentioning(str(out), f"--port {port}", f"127.0.0.1:{port}") == []


@pytest.mark.parametrize("victim", ["scalelab serve", "-m locust"])
def test_a_child_that_dies_fails_the_run_and_leaves_nothing(
    tmp_path: Path, victim: str, no_child_leaks: None
) -> None:
    seen: list[psutil.Process] = []
    killed: list[int] = []
    earlier = {p.pid for p in descendants(os.getpid())}  # e.g. a session's redis-server

    def kill_mid_run() -> None:
        if not _wait_for(os.getpid(), "-m locust", 90):
            return
        port = _service_port(os.getpid())
        if port is None or not wait_until(lambda: _served_requests(port) >= 10, 60, 0.3):
            return
        seen.extend(p for p in descendants(os.getpid()) if p.pid not in earlier)
        for proc in seen:
            if victim in cmdline(proc):
                os.killpg(proc.pid, signal.SIGKILL)  # the child and its whole process group
                killed.append(proc.pid)
                return

    killer = threading.Thread(target=kill_mid_run, daemon=True)
    killer.start()
    out = tmp_path / "results"
    result = run_experiment(
        QUICKSTART,
        overrides=["duration_s=20", *SMALL, *ONE_POINT],
        out=out,
        progress=False,
        report=False,
    )
    killer.join(5)
    assert killed, "the victim was never found"
    (run,) = result.runs
    assert result.status == "failed" and run.status == "failed"
    named = "service" if victim == "scalelab serve" else "Locust"
    assert run.error and named in run.error
    record = json.loads((run.path / "run.json").read_text())
    assert record["status"] == "failed" and named in record["error"]
    assert (run.path / "events.parquet").is_file() and (run.path / "metrics.parquet").is_file()
    events = pd.read_parquet(run.path / "events.parquet").set_index("name")["t"]
    assert events["load_stop"] - events["load_start"] < 15  # well before the 20 s asked for
    port = record["service_url"].rsplit(":", 1)[-1]
    assert still_running(seen) == []
    assert mentioning(str(out), f"--port {port}", f"127.0.0.1:{port}") == []
